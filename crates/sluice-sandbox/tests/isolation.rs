//! The launcher under every isolation this host has, with the probe function: who the function
//! runs as, what root it sees, where its files may live, limits, network, shared users and
//! read-write directories, early exits, teardown and the sweep of a dead launcher's leftovers.

mod support;

use serde_json::json;
use sluice_sandbox::{
    Isolation, IsolationChoice, Launcher, LauncherConfig, SandboxError, SOCKET_DIR,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

fn open_dir(p: &Path) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// This process's supplementary groups (`id -G`).
fn own_groups() -> Vec<u64> {
    let out = std::process::Command::new("id")
        .arg("-G")
        .output()
        .expect("run id -G");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect()
}

#[tokio::test]
async fn functions_run_unprivileged_in_a_minimal_root_and_are_torn_down() {
    for iso in ALL {
        let Some((l, _t)) = launcher(iso) else {
            continue;
        };
        let mut sb = start(&l, spec(&[])).await;
        let dir = sb.dir().expect("dir").to_path_buf();
        let host = std::fs::metadata(&dir).expect("dir");
        assert_eq!(host.mode() & 0o777, 0o700, "{iso}: private sandbox dir");
        assert_eq!(
            host.uid(),
            sb.user().uid(),
            "{iso}: owned by the sandbox's user"
        );
        if is_root() {
            assert_ne!(sb.user().uid(), 0, "{iso}: never root on the host");
        }
        let env = call(&sb, json!({"op": "env"})).await.expect("env");
        assert_eq!(env["env"]["EXTRA"], "2", "{iso}");
        assert_eq!(env["env"]["FROM_SPEC"], "1", "{iso}");
        if is_root() {
            assert_eq!(env["groups"], json!([]), "{iso}: no supplementary groups");
        } else {
            // An unprivileged process cannot drop its supplementary groups: the sandbox keeps
            // the worker user's, seen inside a user namespace as their mapped ids (the user's
            // own group is 1000) or as the overflow id; never a group the user does not have.
            let groups: Vec<u64> = env["groups"]
                .as_array()
                .expect("groups")
                .iter()
                .filter_map(serde_json::Value::as_u64)
                .collect();
            let own = own_groups();
            assert!(
                groups.iter().all(|g| if iso == Isolation::Plain {
                    own.contains(g)
                } else {
                    *g == 1000 || *g == 65534
                }),
                "{iso}: only the worker user's own groups ({own:?}): {groups:?}"
            );
        }
        if iso == Isolation::Plain {
            assert_eq!(env["uid"], sb.user().uid(), "{iso}");
        } else {
            assert_eq!(env["uid"], 1000, "{iso}: a mapped uid inside");
            assert_eq!(env["gid"], 1000, "{iso}");
            assert_eq!(env["cwd"], "/tmp", "{iso}");
            assert_eq!(env["env"]["HOME"], "/tmp", "{iso}");
            let sock = format!("{SOCKET_DIR}/sluice.sock");
            assert_eq!(env["env"]["SLUICE_SOCKET"], json!(sock), "{iso}");
            assert!(
                env["pid"].as_u64() <= Some(2),
                "{iso}: own PID namespace: {env}"
            );
            for (path, visible) in [
                ("/etc/passwd", true),
                ("/etc/shadow", false),
                ("/root/.ssh", false),
            ] {
                let r = call(&sb, json!({"op": "read", "path": path}))
                    .await
                    .expect("read");
                let exists = !r["detail"].as_str().unwrap_or("").contains("No such file");
                assert_eq!(exists, visible, "{iso}: {path}: {r}");
            }
            let w = call(&sb, json!({"op": "write", "path": "/tmp/x"}))
                .await
                .expect("w");
            assert_eq!(w["escaped"], true, "{iso}: /tmp is writable: {w}");
        }
        let cgroups = sb.cgroup_dirs();
        let pid = sb.pid().expect("pid");
        sb.kill().await;
        sb.kill().await;
        assert!(sb.try_exited().is_some());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{iso}: reaped"
        );
        assert!(cgroups.iter().all(|d| !d.exists()), "{iso}: cgroup removed");
        assert!(!dir.exists(), "{iso}: dir removed");
    }
}

#[tokio::test]
async fn a_function_under_tmp_runs_with_exactly_its_files() {
    let fn_dir = tempfile::tempdir().expect("tempdir");
    open_dir(fn_dir.path());
    std::fs::copy(probe_py(), fn_dir.path().join("main.py")).expect("copy");
    let data = tempfile::tempdir().expect("tempdir");
    open_dir(data.path());
    std::fs::write(data.path().join("listed.txt"), "x").expect("write");
    std::fs::write(data.path().join("sibling.txt"), "x").expect("write");
    for iso in ISOLATED {
        let Some((l, _t)) = launcher(iso) else {
            continue;
        };
        let mut s = spec(&[]);
        s.command = vec!["python3".into(), "main.py".into()];
        s.workdir = Some(fn_dir.path().to_path_buf());
        s.files = vec![data.path().join("listed.txt")];
        let sb = start(&l, s).await;
        let env = call(&sb, json!({"op": "env"})).await.expect("env");
        assert_eq!(
            env["cwd"],
            json!(fn_dir.path().display().to_string()),
            "{iso}"
        );
        let read = |p: &Path| json!({"op": "read", "path": p.display().to_string()});
        let listed = call(&sb, read(&data.path().join("listed.txt")))
            .await
            .expect("r");
        assert_eq!(
            listed["escaped"], true,
            "{iso}: a listed file is readable: {listed}"
        );
        let sibling = call(&sb, read(&data.path().join("sibling.txt")))
            .await
            .expect("r");
        assert_eq!(
            sibling["escaped"], false,
            "{iso}: its sibling is not: {sibling}"
        );
        let w = call(
            &sb,
            json!({"op": "write", "path": fn_dir.path().join("x").display().to_string()}),
        );
        assert_eq!(
            w.await.expect("w")["escaped"],
            false,
            "{iso}: its files are read-only"
        );
        drop(sb);

        // Paths the launcher hides are refused, not bound.
        let mut s = spec(&[]);
        s.files = vec![l.sandbox_root().to_path_buf()];
        match l.spawn(s).await {
            Err(SandboxError::BadSpec(m)) => assert!(m.contains("files"), "{iso}: {m}"),
            other => panic!("{iso}: expected BadSpec, got {:?}", other.map(|s| s.id())),
        }
    }
}

#[tokio::test]
async fn memory_pids_and_tmp_limits_hold() {
    for iso in ALL {
        let Some((l, _t)) = launcher(iso) else {
            continue;
        };
        if l.cgroups() == sluice_sandbox::CgroupMode::None {
            eprintln!("SKIPPING limits under {iso}: no usable cgroups here");
            continue;
        }
        let mut s = spec(&[]);
        s.limits.pids = 24;
        s.limits.memory_bytes = 96 << 20;
        s.limits.tmp_bytes = 8 << 20;
        let mut sb = start(&l, s).await;
        let t = call(&sb, json!({"op": "threads", "n": 24}))
            .await
            .expect("threads");
        assert_eq!(t["escaped"], false, "{iso}: pids limit: {t}");
        if iso != Isolation::Plain {
            let table = call(&sb, json!({"op": "probe", "tmp_mb": 8, "pids": 24}))
                .await
                .expect("probe");
            let fill = &table["fill /tmp beyond 8 MiB"];
            assert_eq!(fill["escaped"], false, "{iso}: /tmp is limited: {fill}");
        }
        let hog = call(&sb, json!({"op": "alloc", "mb": 512})).await;
        assert!(hog.is_err(), "{iso}: {hog:?}");
        assert!(
            within(|| sb.try_exited().is_some(), 10).await,
            "{iso}: OOM-killed"
        );
        sb.kill().await;
    }
}

/// The host's first non-loopback IPv4 address, if it has one.
fn host_address() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // No packet is sent: connecting a UDP socket only picks the route and source address.
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn the_network_is_private_and_outbound_only_when_asked() {
    let lo = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let lo_port = lo.local_addr().expect("addr").port();
    let outside = host_address().and_then(|ip| std::net::TcpListener::bind((ip, 0)).ok());
    for iso in ISOLATED {
        let Some((l, _t)) = launcher(iso) else {
            continue;
        };
        for network in [false, true] {
            if network && !network_usable() {
                continue;
            }
            let mut s = spec(&[]);
            s.network = network;
            let started = Instant::now();
            let sb = start(&l, s).await;
            eprintln!("{iso}, network {network}: ready in {:?}", started.elapsed());
            let connect =
                |host: String, port: u16| json!({"op": "connect", "host": host, "port": port});
            for host in ["127.0.0.1", "10.0.2.2"] {
                let c = call(&sb, connect(host.into(), lo_port))
                    .await
                    .expect("connect");
                assert_eq!(c["escaped"], false, "{iso}, network {network}: {host}: {c}");
            }
            match &outside {
                Some(o) => {
                    let a = o.local_addr().expect("addr");
                    let c = call(&sb, connect(a.ip().to_string(), a.port()))
                        .await
                        .expect("c");
                    assert_eq!(
                        c["escaped"], network,
                        "{iso}, network {network}: outbound: {c}"
                    );
                }
                None => eprintln!(
                    "SKIPPING the outbound check: this host has no non-loopback IPv4 address"
                ),
            }
            let resolv = call(&sb, json!({"op": "cat", "path": "/etc/resolv.conf"}))
                .await
                .expect("cat");
            let uses_slirp = resolv.to_string().contains("10.0.2.3");
            assert_eq!(uses_slirp, network, "{iso}: {resolv}");
            drop(sb);
        }
    }
}

#[tokio::test]
async fn a_shared_user_shares_a_read_write_directory() {
    for iso in ISOLATED {
        let Some((l, t)) = launcher(iso) else {
            continue;
        };
        let user = l.lease_user().expect("user");
        let shared = t.path().join("group");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        user.chown(&shared).expect("chown");
        let mut sbs = Vec::new();
        for _ in 0..2 {
            let mut s = spec(&[]);
            s.user = Some(user.clone());
            s.read_write = vec![shared.clone()];
            sbs.push(start(&l, s).await);
        }
        for (i, sb) in sbs.iter().enumerate() {
            assert_eq!(sb.user().uid(), user.uid(), "{iso}");
            let p = shared.join(format!("seg-{i}")).display().to_string();
            let w = call(sb, json!({"op": "write", "path": p}))
                .await
                .expect("w");
            assert_eq!(w["escaped"], true, "{iso}: writable: {w}");
        }
        assert!(
            shared.join("seg-0").exists() && shared.join("seg-1").exists(),
            "{iso}"
        );
        let other = start(&l, spec(&[])).await;
        if is_root() {
            assert_ne!(
                other.user().uid(),
                user.uid(),
                "{iso}: others get their own user"
            );
        }
    }
}

#[tokio::test]
async fn a_function_cannot_point_the_launcher_at_another_sandboxs_socket() {
    for iso in ALL {
        let Some((l, _t)) = launcher(iso) else {
            continue;
        };
        let a = start(&l, spec(&[])).await;
        let b = start(&l, spec(&[])).await;
        let whoami = |v: serde_json::Value| v["instance"].as_str().unwrap_or("").to_string();
        let a_id = whoami(call(&a, json!({"op": "env"})).await.expect("a"));
        let b_id = whoami(call(&b, json!({"op": "env"})).await.expect("b"));
        assert_ne!(a_id, b_id);
        let target = b.socket_dir().join("sluice.sock").display().to_string();
        call(&a, json!({"op": "hijack", "target": target}))
            .await
            .expect("hijack");
        // Through its path, A's socket now leads to B ...
        let s = a.host_path("sluice.sock");
        let (_, body) =
            tokio::task::spawn_blocking(move || http(&s, "POST", "/invoke", r#"{"op":"env"}"#))
                .await
                .expect("join")
                .expect("the symlink leads somewhere");
        let via_path: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(whoami(via_path), b_id, "{iso}: the symlink points at B");
        // ... but the launcher's pinned socket still reaches A, and pinning it again fails.
        let again = call(&a, json!({"op": "env"})).await.expect("a again");
        assert_eq!(whoami(again), a_id, "{iso}: still A");
        assert!(
            a.pin("sluice.sock").is_err(),
            "{iso}: a symlink is not pinned"
        );
    }
}

#[tokio::test]
async fn early_exit_fails_fast_and_silence_times_out() {
    for iso in ALL {
        let Some((l, _t)) = launcher(iso) else {
            continue;
        };
        let mut sb = l.spawn(spec(&["exit"])).await.expect("spawn");
        let started = Instant::now();
        match wait_ready(&mut sb, READY).await {
            Err(SandboxError::Exited { code, stderr_tail }) => {
                assert_eq!(code, Some(3), "{iso}");
                assert!(stderr_tail.contains("boom"), "{iso}: {stderr_tail}");
            }
            other => panic!("{iso}: expected Exited, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{iso}: fails fast"
        );
        sb.kill().await;
        let mut sb = l.spawn(spec(&["mute"])).await.expect("spawn");
        let r = wait_ready(&mut sb, Duration::from_millis(500)).await;
        assert!(
            matches!(r, Err(SandboxError::NotReady { .. })),
            "{iso}: {r:?}"
        );
        assert!(sb.try_exited().is_none());
        sb.kill().await;
    }
}

#[tokio::test]
async fn a_dead_launchers_leftovers_are_swept_and_a_live_ones_spared() {
    let Some((l, t)) = launcher(Isolation::Bubblewrap) else {
        return;
    };
    let live = start(&l, spec(&[])).await;
    let stale = t.path().join("sandboxes/w4294967295-1/run");
    std::fs::create_dir_all(&stale).expect("mkdir");
    assert!(l.sweep_stale() >= 1);
    assert!(!stale.exists(), "a dead launcher's directory goes");
    assert!(live.dir().is_some_and(Path::exists), "a live one's stays");
    call(&live, json!({"op": "echo"}))
        .await
        .expect("still serving");
}

/// A sandbox process can outlive a worker killed with SIGKILL (bubblewrap's inner process arms
/// its parent-death signal only after it starts): the next worker's sweep kills what still runs
/// in a dead worker's cgroup and removes the cgroup. Needs real cgroups (root).
#[tokio::test]
async fn a_dead_workers_sandbox_processes_are_killed_by_the_sweep() {
    use std::os::unix::process::ExitStatusExt;
    let Some((l, _t)) = launcher(Isolation::Bubblewrap) else {
        return;
    };
    let root = Path::new("/sys/fs/cgroup");
    let parents: Vec<std::path::PathBuf> = if root.join("cgroup.controllers").exists() {
        vec![root.join("sluice")]
    } else {
        ["memory", "cpu", "pids"]
            .iter()
            .map(|c| root.join(c).join("sluice"))
            .collect()
    };
    // A name whose worker pid cannot be running.
    let name = format!("w4294967295-{}", std::process::id());
    let dirs: Vec<_> = parents.iter().map(|p| p.join(&name)).collect();
    if dirs.iter().any(|d| std::fs::create_dir_all(d).is_err()) {
        assert!(!is_root(), "root must be able to create cgroups here");
        eprintln!("SKIPPING the sweep of a dead worker's cgroup: cannot create cgroups (not root)");
        return;
    }
    let mut leftover = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("sleep");
    for d in &dirs {
        std::fs::write(d.join("cgroup.procs"), leftover.id().to_string()).expect("join cgroup");
    }
    assert!(l.sweep_stale() >= 1);
    let status = leftover.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the leftover is killed"
    );
    for d in &dirs {
        assert!(!d.exists(), "{} is removed", d.display());
    }
}

#[test]
fn plain_processes_need_an_explicit_allowance() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut cfg = LauncherConfig::new(t.path().join("sb"));
    cfg.isolation = IsolationChoice::Only(Isolation::Plain);
    let e = Launcher::new(cfg.clone()).expect_err("refused");
    assert!(e.to_string().contains("allow_unisolated"), "{e}");
    cfg.allow_unisolated = true;
    assert_eq!(
        Launcher::new(cfg).expect("allowed").isolation(),
        Isolation::Plain
    );
}
