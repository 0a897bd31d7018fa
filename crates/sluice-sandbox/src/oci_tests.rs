//! Unit tests of `oci.rs`: a plan as an OCI bundle (mounts, scratch root, process, limits,
//! cgroup path) and the seccomp filter as an OCI profile.

use super::*;
use serde_json::Value;

fn plan() -> Plan {
    Plan {
        mounts: vec![
            Mount::Symlink {
                target: "usr/lib".into(),
                dst: "/lib".into(),
            },
            Mount::RoBind {
                src: "/srv/root/usr".into(),
                dst: "/usr".into(),
            },
            Mount::File {
                dst: "/etc/passwd".into(),
                data: "x\n".into(),
            },
            Mount::Dev { dst: "/dev".into() },
            Mount::Proc {
                dst: "/proc".into(),
            },
            Mount::Tmpfs {
                dst: "/tmp".into(),
                size: 1 << 20,
                mode: 0o1777,
            },
            Mount::Bind {
                src: "/s/run".into(),
                dst: "/run/sluice".into(),
            },
            Mount::Dir {
                dst: "/work/a".into(),
            },
            Mount::RemountRo { dst: "/".into() },
        ],
        chdir: "/tmp".into(),
        command: vec!["/usr/bin/app".into(), "-v".into()],
        env: vec![("PATH".into(), "/usr/bin".into())],
        trusted: Vec::new(),
        user: Some((0, 0)),
    }
}

#[test]
fn a_plan_becomes_a_read_only_unprivileged_config_with_its_mounts_in_order() {
    let t = tempfile::tempdir().expect("tempdir");
    let limits = Limits {
        memory_bytes: 64 << 20,
        cpus: 0.5,
        pids: 32,
        tmp_bytes: 1 << 20,
    };
    let b = Bundle {
        dir: t.path(),
        ids: (100_123, 100_123),
        limits: &limits,
        cgroup: "/sluice/w1-2".into(),
    };
    let bundle = write_bundle(&plan(), &b).expect("bundle");
    let c: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("config"))
            .expect("json");
    assert_eq!(c["root"]["readonly"], true);
    assert_eq!(
        c["process"]["user"]["uid"], 100_123,
        "the sandbox's host uid"
    );
    assert_eq!(c["process"]["noNewPrivileges"], true);
    assert_eq!(
        c["process"]["capabilities"]["bounding"],
        serde_json::json!([])
    );
    assert_eq!(
        c["process"]["args"],
        serde_json::json!(["/usr/bin/app", "-v"])
    );
    assert_eq!(c["linux"]["cgroupsPath"], "/sluice/w1-2");
    assert_eq!(c["linux"]["resources"]["memory"]["limit"], 64 << 20);
    assert_eq!(c["linux"]["resources"]["cpu"]["quota"], 50_000);
    assert_eq!(c["linux"]["resources"]["pids"]["limit"], 32);
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .expect("ns")
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network", "cgroup"]);
    let dsts: Vec<&str> = c["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["destination"].as_str())
        .collect();
    assert_eq!(
        dsts,
        [
            "/usr",
            "/etc/passwd",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/proc",
            "/tmp",
            "/run/sluice"
        ]
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_link(rootfs.join("lib")).expect("link"),
        PathBuf::from("usr/lib")
    );
    assert!(rootfs.join("work/a").is_dir());
    assert_eq!(
        std::fs::read_to_string(bundle.join("files/2")).expect("file"),
        "x\n"
    );

    let mut gpu = plan();
    gpu.mounts.push(Mount::DevBind {
        src: "/dev/nvidia0".into(),
        dst: "/dev/nvidia0".into(),
    });
    let t2 = tempfile::tempdir().expect("tempdir");
    let b2 = Bundle {
        dir: t2.path(),
        ..b
    };
    assert!(
        write_bundle(&gpu, &b2).is_err(),
        "GPU sandboxes are refused"
    );
}

#[test]
fn the_seccomp_profile_denies_what_the_filter_denies() {
    let p = serde_json::to_value(profile().expect("profile")).expect("json");
    assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
    assert_eq!(p["architectures"], serde_json::json!(["SCMP_ARCH_X86_64"]));
    let calls = p["syscalls"].as_array().expect("syscalls");
    let names = calls[0]["names"].as_array().expect("names");
    for n in [
        "ptrace",
        "mount",
        "bpf",
        "setns",
        "unshare",
        "keyctl",
        "io_uring_setup",
    ] {
        assert!(names.iter().any(|x| x == n), "{n}");
    }
    assert_eq!(calls[0]["errnoRet"], libc::EPERM);
    let clone3 = calls
        .iter()
        .find(|c| c["names"][0] == "clone3")
        .expect("clone3");
    assert_eq!(clone3["errnoRet"], libc::ENOSYS);
    let clones = calls.iter().filter(|c| c["names"][0] == "clone").count();
    assert_eq!(clones, CLONE_NS_FLAGS.len());
    assert!(calls.iter().any(|c| c["names"][0] == "personality"));
}
