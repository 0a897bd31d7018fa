//! Sandbox and function-protocol tests: a standard-library Python function
//! (`fixtures/sandbox/function.py`) runs under every isolation that works on this host and
//! probes it — protocol round trip and environment, memory and pids limits, network, read-only
//! system and private /tmp, early exit, oversized responses, kill and drop cleanup.

#[path = "fixtures/sandbox/support.rs"]
mod support;

use serde_json::json;
use sluice_worker::protocol::ProtocolError;
use sluice_worker::sandbox::{CgroupMode, Isolation, SandboxError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

#[tokio::test]
async fn round_trip_environment_errors_and_kill() {
    for iso in ALL {
        let Some(l) = launcher(iso) else { continue };
        let (mut sb, _root) = ready(&l, resources()).await;
        let dir = sb.dir().expect("dir").to_path_buf();
        let echo = call(&sb, json!({"op": "echo", "n": [1, 2]}))
            .await
            .expect("echo");
        assert_eq!(echo, json!({"op": "echo", "n": [1, 2]}), "{iso}");

        let env = call(&sb, json!({"op": "env"})).await.expect("env");
        let socket = dir.join("sluice.sock").display().to_string();
        assert_eq!(env["env"]["SLUICE_SOCKET"], json!(socket), "{iso}");
        assert_eq!(env["env"]["LANG"], json!("C.UTF-8"));
        assert_eq!(env["env"]["EXTRA"], json!("2"));
        assert_eq!(env["env"]["FROM_SPEC"], json!("1"));
        let tmp = if iso == Isolation::Plain {
            dir.join("tmp")
        } else {
            PathBuf::from("/tmp")
        };
        assert_eq!(env["cwd"], json!(tmp.display().to_string()), "{iso}");
        assert_eq!(env["env"]["HOME"], env["cwd"]);
        if iso != Isolation::Plain {
            // Pid 1 is the function (unshare) or bubblewrap's init (then the function is 2).
            assert!(
                env["pid"].as_u64() <= Some(2),
                "{iso}: own PID namespace: {env}"
            );
        }

        match call(&sb, json!({"op": "fail"})).await {
            Err(ProtocolError::Status { status: 500, body }) => {
                assert!(body.starts_with("deliberate failure") && body.len() <= 4096)
            }
            other => panic!("{iso}: expected a 500, got {other:?}"),
        }

        let cgroups = sb.cgroup_dirs();
        if l.cgroups() == CgroupMode::V1 {
            let quota = cgroups
                .iter()
                .map(|d| d.join("cpu.cfs_quota_us"))
                .find(|p| p.exists());
            let quota = std::fs::read_to_string(quota.expect("cpu cgroup")).expect("quota");
            assert_eq!(quota.trim(), "50000");
        }
        let pid = sb.pid().expect("pid");
        sb.kill().await;
        sb.kill().await;
        assert!(sb.try_exited().is_some());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{iso}: process reaped"
        );
        assert!(cgroups.iter().all(|d| !d.exists()), "{iso}: cgroup removed");
        assert!(!dir.exists(), "{iso}: dir removed");
    }
}

#[tokio::test]
async fn system_is_read_only_tmp_private_and_network_off() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let outside_tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for iso in [Isolation::Bubblewrap, Isolation::Unshare] {
        let Some(l) = launcher(iso) else { continue };
        // One sandbox dir under /tmp (hidden by the private /tmp), one outside it.
        for base in [None, Some(outside_tmp.as_path())] {
            let (sb, _root) = spawn_in(&l, base, resources(), &[]).await;
            let mut sb = sb.expect("spawn");
            sb.wait_ready(READY).await.expect("ready");
            let dir = sb.dir().expect("dir").to_path_buf();
            let w = call(&sb, json!({"op": "write", "path": "/tmp/probe"}))
                .await
                .expect("w");
            assert_eq!(w["ok"], json!(true), "{iso}: {w}");
            assert!(
                dir.join("tmp/probe").exists(),
                "{iso}: /tmp is the sandbox's tmp"
            );
            let etc = call(&sb, json!({"op": "write", "path": "/etc/sluice-probe"})).await;
            assert_eq!(etc.expect("w")["ok"], json!(false), "{iso}: / is read-only");
            let own = dir.join("own").display().to_string();
            let own = call(&sb, json!({"op": "write", "path": own}))
                .await
                .expect("w");
            assert_eq!(own["ok"], json!(true), "{iso}: the sandbox dir is writable");
            let net = call(&sb, json!({"op": "connect", "port": port}))
                .await
                .expect("c");
            assert_eq!(net["ok"], json!(false), "{iso}: no network: {net}");
            sb.kill().await;
        }
        let mut r = resources();
        r.network = true;
        let (mut sb, _root) = ready(&l, r).await;
        let net = call(&sb, json!({"op": "connect", "port": port}))
            .await
            .expect("c");
        assert_eq!(net["ok"], json!(true), "{iso}: network allowed: {net}");
        sb.kill().await;
    }
    assert!(!Path::new("/etc/sluice-probe").exists());
}

#[tokio::test]
async fn a_shared_memory_directory_is_writable_inside_the_sandbox() {
    // Pipeline stages write their outputs into their group's directory on /dev/shm (which both
    // isolations replace with a private one) or, without /dev/shm, under the data dir.
    let bases = [
        Path::new("/dev/shm").to_path_buf(),
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    ];
    for iso in [Isolation::Bubblewrap, Isolation::Unshare] {
        let Some(l) = launcher(iso) else { continue };
        for base in bases.iter().filter(|b| b.is_dir()) {
            let group = tempfile::tempdir_in(base).expect("group dir");
            let shm = group.path().display().to_string();
            let env = [("SLUICE_SHM_DIR", shm.as_str())];
            let (sb, _root) = spawn_with_env(&l, None, resources(), &[], &env).await;
            let mut sb = sb.expect("spawn");
            sb.wait_ready(READY).await.expect("ready");
            let probe = group.path().join("seg-0").display().to_string();
            let w = call(&sb, json!({"op": "write", "path": probe}))
                .await
                .expect("w");
            assert_eq!(w["ok"], json!(true), "{iso} under {}: {w}", base.display());
            assert!(
                group.path().join("seg-0").exists(),
                "{iso}: written on the host"
            );
            sb.kill().await;
        }
    }
}

#[tokio::test]
async fn memory_and_pids_limits_are_enforced() {
    for iso in ALL {
        let Some(l) = launcher(iso) else { continue };
        if l.cgroups() == CgroupMode::None {
            println!("skipping limits under {iso}: no usable cgroups here");
            return;
        }
        let mut r = resources();
        r.pids = 16;
        r.memory_mb = 64;
        let (mut sb, _root) = ready(&l, r).await;
        let t = call(&sb, json!({"op": "threads", "n": 64}))
            .await
            .expect("threads");
        let started = t["started"].as_u64().unwrap_or(0);
        assert!(started > 0 && started < 64, "{iso}: pids limit: {t}");
        let hog = call(&sb, json!({"op": "alloc", "mb": 256})).await;
        assert!(matches!(hog, Err(ProtocolError::Io(_))), "{iso}: {hog:?}");
        assert!(
            gone_within(|| sb.try_exited().is_some(), 5).await,
            "{iso}: OOM-killed"
        );
        sb.kill().await;
    }
}

#[tokio::test]
async fn early_exit_fails_fast_and_silence_times_out() {
    for iso in ALL {
        let Some(l) = launcher(iso) else { continue };
        let (sb, _root) = spawn_in(&l, None, resources(), &["exit"]).await;
        let mut sb = sb.expect("spawn");
        let started = Instant::now();
        match sb.wait_ready(READY).await {
            Err(SandboxError::Exited { code, stderr_tail }) => {
                assert_eq!(code, Some(3), "{iso}");
                assert!(stderr_tail.contains("boom"), "{iso}: {stderr_tail}");
                assert!(sb.stderr_tail().contains("boom"));
            }
            other => panic!("{iso}: expected Exited, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{iso}: fails fast"
        );
        let again = sb.wait_ready(READY).await;
        assert!(matches!(
            again,
            Err(SandboxError::Exited { code: Some(3), .. })
        ));
        sb.kill().await;
    }
    let Some(l) = launcher(Isolation::Plain) else {
        return;
    };
    let (sb, _root) = spawn_in(&l, None, resources(), &["mute"]).await;
    let mut sb = sb.expect("spawn");
    let r = sb.wait_ready(Duration::from_millis(300)).await;
    assert!(matches!(r, Err(SandboxError::NotReady { .. })), "{r:?}");
    assert!(sb.try_exited().is_none());
    sb.kill().await;
    assert!(sb.try_exited().is_some());
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let Some(l) = launcher(Isolation::Plain) else {
        return;
    };
    let (mut sb, _root) = ready(&l, resources()).await;
    for op in ["big", "stream"] {
        let r = sb
            .client()
            .invoke(json!({"op": op, "mb": 4}).to_string().into(), MB)
            .await;
        assert!(
            matches!(r, Err(ProtocolError::TooLarge { limit: MB })),
            "{op}: {r:?}"
        );
    }
    let ok = sb
        .client()
        .invoke(json!({"op": "big", "mb": 1}).to_string().into(), 2 * MB);
    assert_eq!(ok.await.expect("fits").len(), MB + 2);
    assert!(sb.client().ready().await.expect("still serving"));
    sb.kill().await;
}

#[tokio::test]
async fn kill_stops_a_hung_function_and_drop_cleans_up() {
    for iso in ALL {
        let Some(l) = launcher(iso) else { continue };
        let (mut sb, _root) = ready(&l, resources()).await;
        let hung = sb
            .client()
            .invoke(json!({"op": "hang"}).to_string().into(), MB);
        let r = tokio::time::timeout(Duration::from_millis(200), hung).await;
        assert!(r.is_err(), "{iso}: the caller's timeout fires");
        let cgroups = sb.cgroup_dirs();
        let started = Instant::now();
        sb.kill().await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{iso}: kill is quick"
        );
        assert!(cgroups.iter().all(|d| !d.exists()), "{iso}: cgroup removed");
        assert!(matches!(
            sb.client().ready().await,
            Err(ProtocolError::Connect(_))
        ));

        let (sb, _root) = ready(&l, resources()).await;
        let (pid, dir, cgroups) = (sb.pid(), sb.dir().map(Path::to_path_buf), sb.cgroup_dirs());
        drop(sb);
        let stat = format!("/proc/{}/stat", pid.unwrap_or(0));
        let dead = || std::fs::read_to_string(&stat).map_or(true, |s| s.contains(") Z "));
        assert!(gone_within(dead, 5).await, "{iso}: killed");
        assert!(
            !dir.is_some_and(|d| d.exists()),
            "{iso}: dir removed on drop"
        );
        let cg = gone_within(|| cgroups.iter().all(|d| !d.exists()), 5).await;
        assert!(cg, "{iso}: cgroup removed after drop");
    }
}
