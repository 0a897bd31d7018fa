//! Unit tests of `cgroup.rs` against fake cgroup roots in temp dirs (v1 and v2 layouts).

use super::*;

fn res() -> Limits {
    Limits {
        cpus: 0.5,
        memory_bytes: 64 << 20,
        pids: 32,
        ..Limits::default()
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
        read(r.join(format!("memory/sluice/{}/memory.limit_in_bytes", name(7)))),
        "67108864"
    );
    assert_eq!(
        read(r.join(format!("cpu/sluice/{}/cpu.cfs_quota_us", name(7)))),
        "50000"
    );
    assert_eq!(
        read(r.join(format!("cpu/sluice/{}/cpu.cfs_period_us", name(7)))),
        "100000"
    );
    assert_eq!(
        read(r.join(format!("pids/sluice/{}/pids.max", name(7)))),
        "32"
    );
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
    assert_eq!(
        read(r.join(format!("sluice/{}/memory.max", name(9)))),
        "67108864"
    );
    assert_eq!(
        read(r.join(format!("sluice/{}/cpu.max", name(9)))),
        "50000 100000"
    );
    assert_eq!(read(r.join(format!("sluice/{}/pids.max", name(9)))), "32");
    assert_eq!(cg.dirs(), &[r.join(format!("sluice/{}", name(9)))]);
}

#[test]
fn sweep_kills_a_dead_workers_leftovers_and_removes_its_cgroups() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    for d in ["memory/sluice/1", "cpu/sluice/1", "pids/sluice/2"] {
        fs::create_dir_all(r.join(d)).expect("mkdir");
    }
    // A dead worker's sandbox process still in its cgroup (this test's own child here) is killed;
    // the fake directory, not being a cgroup, cannot then be removed.
    let mut leftover = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("sleep");
    fs::write(
        r.join("pids/sluice/2/cgroup.procs"),
        format!("{}\n", leftover.id()),
    )
    .expect("busy");
    assert_eq!(
        sweep(CgroupMode::V1, r),
        1,
        "the two directories of sandbox 1"
    );
    let status = leftover.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(r.join("pids/sluice/2").exists());
    assert_eq!(sweep(CgroupMode::None, r), 0);
    // A live worker's cgroup (this process's) stays even when empty; a dead one's goes.
    fs::create_dir_all(r.join("memory/sluice").join(name(5))).expect("mkdir");
    fs::create_dir_all(r.join("memory/sluice/w4294967295-5")).expect("mkdir");
    assert_eq!(sweep(CgroupMode::V1, r), 1);
    assert!(r.join("memory/sluice").join(name(5)).exists());
}

#[test]
fn nothing_usable_is_none() {
    let root = tempfile::tempdir().expect("tempdir");
    assert_eq!(detect(root.path()), CgroupMode::None);
    let cg = Cgroup::create(CgroupMode::None, root.path(), 1, &res()).expect("ok");
    assert!(cg.is_none());
}
