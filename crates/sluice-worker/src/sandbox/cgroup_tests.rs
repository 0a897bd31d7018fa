//! Unit tests of `cgroup.rs` against fake cgroup roots in temp dirs (v1 and v2 layouts).

use super::*;

fn res() -> Resources {
    Resources {
        cpus: 0.5,
        memory_mb: 64,
        pids: 32,
        ..Resources::default()
    }
}

fn read(p: PathBuf) -> String {
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn v1_limits_are_written_per_controller() {
    let root = tempfile::tempdir().expect("tempdir");
    for c in V1_CONTROLLERS {
        fs::create_dir(root.path().join(c)).expect("mkdir");
    }
    assert_eq!(detect(root.path()), CgroupMode::V1);
    let cg = Cgroup::create(CgroupMode::V1, root.path(), 7, &res())
        .expect("create")
        .expect("some");
    let r = root.path();
    assert_eq!(
        read(r.join("memory/sluice/7/memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(read(r.join("cpu/sluice/7/cpu.cfs_quota_us")), "50000");
    assert_eq!(read(r.join("cpu/sluice/7/cpu.cfs_period_us")), "100000");
    assert_eq!(read(r.join("pids/sluice/7/pids.max")), "32");
    assert_eq!(cg.dirs().len(), 3);
}

#[test]
fn v2_enables_controllers_and_writes_limits() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    fs::write(r.join("cgroup.controllers"), "cpuset cpu io memory pids\n").expect("write");
    fs::write(r.join("cgroup.subtree_control"), "").expect("write");
    assert_eq!(detect(r), CgroupMode::V2);
    let cg = Cgroup::create(CgroupMode::V2, r, 9, &res())
        .expect("create")
        .expect("some");
    assert_eq!(
        read(r.join("sluice/cgroup.subtree_control")),
        "+memory +cpu +pids"
    );
    assert_eq!(read(r.join("sluice/9/memory.max")), "67108864");
    assert_eq!(read(r.join("sluice/9/cpu.max")), "50000 100000");
    assert_eq!(read(r.join("sluice/9/pids.max")), "32");
    assert_eq!(cg.dirs(), &[r.join("sluice/9")]);
}

#[test]
fn sweep_removes_only_empty_cgroups() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    for d in ["memory/sluice/1", "cpu/sluice/1", "pids/sluice/2"] {
        fs::create_dir_all(r.join(d)).expect("mkdir");
    }
    fs::write(r.join("pids/sluice/2/cgroup.procs"), "42\n").expect("busy");
    assert_eq!(sweep(CgroupMode::V1, r), 2);
    assert!(r.join("pids/sluice/2").exists());
    assert_eq!(sweep(CgroupMode::None, r), 0);
}

#[test]
fn nothing_usable_is_none() {
    let root = tempfile::tempdir().expect("tempdir");
    assert_eq!(detect(root.path()), CgroupMode::None);
    let cg = Cgroup::create(CgroupMode::None, root.path(), 1, &res()).expect("ok");
    assert!(cg.is_none());
}
