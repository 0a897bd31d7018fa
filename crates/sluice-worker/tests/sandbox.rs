//! The worker's sandbox adapter with the function protocol: a standard-library Python function
//! (`fixtures/sandbox/function.py`) started from a `FunctionSpec` under each isolation this
//! host has — protocol round trip and environment, errors, a shared-memory directory the worker
//! passes, early exit, oversized responses, kill and drop cleanup. The launcher's own behaviour
//! (users, root, seccomp, network, limits, the escape probe) is tested in `sluice-sandbox`.

#[path = "fixtures/sandbox/support.rs"]
mod support;

use serde_json::json;
use sluice_worker::protocol::ProtocolError;
use sluice_worker::sandbox::{Isolation, SandboxError, SOCKET_DIR};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

#[tokio::test]
async fn round_trip_environment_errors_and_kill() {
    for iso in ALL {
        let Some((l, _t)) = launcher(iso) else {
            continue;
        };
        let (mut sb, _fn) = ready(&l, resources()).await;
        let dir = sb.dir().expect("dir").to_path_buf();
        let echo = call(&sb, json!({"op": "echo", "n": [1, 2]}))
            .await
            .expect("echo");
        assert_eq!(echo, json!({"op": "echo", "n": [1, 2]}), "{iso}");
        let env = call(&sb, json!({"op": "env"})).await.expect("env");
        let socket = if iso == Isolation::Plain {
            dir.join("run/sluice.sock").display().to_string()
        } else {
            format!("{SOCKET_DIR}/sluice.sock")
        };
        assert_eq!(env["env"]["SLUICE_SOCKET"], json!(socket), "{iso}");
        assert_eq!(env["env"]["LANG"], json!("C.UTF-8"));
        assert_eq!(env["env"]["EXTRA"], json!("2"));
        assert_eq!(env["env"]["FROM_SPEC"], json!("1"));
        assert_eq!(env["env"]["HOME"], env["cwd"], "{iso}");
        match call(&sb, json!({"op": "fail"})).await {
            Err(ProtocolError::Status { status: 500, body }) => {
                assert!(body.starts_with("deliberate failure") && body.len() <= 4096)
            }
            other => panic!("{iso}: expected a 500, got {other:?}"),
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
async fn a_shared_memory_directory_the_worker_passes_is_writable_inside() {
    // Pipeline stages write their outputs into their group's directory on /dev/shm (which the
    // sandbox replaces with a private one) or, without /dev/shm, under the data dir; the
    // stages of a group run as the group's user, which owns the directory.
    for iso in ALL {
        let Some((l, t)) = launcher(iso) else {
            continue;
        };
        for base in [Path::new("/dev/shm"), t.path()]
            .iter()
            .filter(|b| b.is_dir())
        {
            let group = tempfile::tempdir_in(base).expect("group dir");
            let user = l.lease_user().expect("user");
            user.chown(group.path()).expect("chown");
            let shm = group.path().display().to_string();
            let env = [("SLUICE_SHM_DIR", shm.as_str())];
            let (sb, _fn) = spawn_as(&l, Some(user), resources(), &[], &env).await;
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
async fn early_exit_fails_fast_and_silence_times_out() {
    for iso in ALL {
        let Some((l, _t)) = launcher(iso) else {
            continue;
        };
        let (sb, _fn) = spawn_with_env(&l, resources(), &["exit"], &[]).await;
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
        sb.kill().await;
        let (sb, _fn) = spawn_with_env(&l, resources(), &["mute"], &[]).await;
        let mut sb = sb.expect("spawn");
        let r = sb.wait_ready(Duration::from_millis(300)).await;
        assert!(
            matches!(r, Err(SandboxError::NotReady { .. })),
            "{iso}: {r:?}"
        );
        assert!(sb.try_exited().is_none());
        sb.kill().await;
        assert!(sb.try_exited().is_some());
    }
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let Some((l, _t)) = launcher(Isolation::Bubblewrap) else {
        return;
    };
    let (mut sb, _fn) = ready(&l, resources()).await;
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
        let Some((l, _t)) = launcher(iso) else {
            continue;
        };
        let (mut sb, _fn) = ready(&l, resources()).await;
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
        let after = sb.client().ready().await;
        assert!(
            matches!(after, Err(ProtocolError::Connect(_))),
            "{iso}: nothing answers after kill: {after:?}"
        );
        let (sb, _fn) = ready(&l, resources()).await;
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
