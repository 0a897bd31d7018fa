//! A new user's first hour against the real binary: register a Python function from a folder of
//! its own, invoke it asynchronously, find the invocation (`sluice invocations list|get`) and
//! read the function's logs (`sluice logs`); the worker's log says why a function failed to
//! start (with a hint for a missing Python module) and why a pipeline deploy was refused; and
//! the README's walk-through works for a user who is not root.

mod common;

use common::{http, repo, Worker};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `sluice ARGS` against `url`; returns (exit code, stdout, stderr).
fn sluice(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_URL", url)
        .output()
        .expect("run sluice");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A function folder like the README's: `main.py` (printing to stdout and stderr) and
/// `function.json`.
fn greet_folder(dir: &Path) -> PathBuf {
    let folder = dir.join("greet");
    std::fs::create_dir_all(&folder).expect("folder");
    let main = "import sys\nimport sluice_function\n\
        def greet(arg):\n    print('greeting', arg.get('who', 'you'))\n    \
        print('a note on stderr', file=sys.stderr)\n    \
        return {'greeting': 'hi ' + arg.get('who', 'you')}\n\
        sluice_function.serve(greet)\n";
    std::fs::write(folder.join("main.py"), main).expect("main.py");
    let spec = json!({"name": "greet", "command": ["python3", folder.join("main.py")],
        "env": {"PYTHONPATH": repo().join("sdk/python")}});
    let file = folder.join("function.json");
    std::fs::write(&file, spec.to_string()).expect("function.json");
    file
}

#[test]
fn an_async_invocation_is_found_with_its_logs_through_the_cli() {
    let w = Worker::start(&[]);
    let url = format!("http://{}", w.addr);
    let spec = greet_folder(&w.dir);
    let (code, out, err) = sluice(&url, &["fn", "register", &spec.display().to_string()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = sluice(&url, &["invoke", "greet", r#"{"who":"async"}"#, "--async"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let id = err
        .split_whitespace()
        .find(|w| w.starts_with("inv-"))
        .expect("the id is printed")
        .to_string();
    let (code, list, err) = sluice(&url, &["invocations", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        list.contains(&id) && list.contains("greet") && list.contains("succeeded"),
        "{list}"
    );
    let (_, one, _) = sluice(&url, &["invocations", "get", &id]);
    assert!(one.contains("hi async"), "{one}");
    assert!(
        one.contains("greeting async") && one.contains("a note on stderr"),
        "{one}"
    );
    let (_, json_out, _) = sluice(&url, &["invocations", "get", &id, "--json"]);
    let v: Value = serde_json::from_str(&json_out).expect("JSON");
    assert_eq!(v["status"], "succeeded");
    let (_, filtered, _) = sluice(&url, &["invocations", "list", "--status", "failed"]);
    assert!(filtered.contains("no invocations"), "{filtered}");
    let (code, _, err) = sluice(&url, &["invocations", "list", "--status", "done"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("status"), "{err}");
    let (code, out, err) = sluice(&url, &["logs", "greet"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("greeting async"), "stdout to stdout: {out}");
    assert!(err.contains("a note on stderr"), "stderr to stderr: {err}");
    let (code, _, err) = sluice(&url, &["logs", "nosuch"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown function"), "{err}");
}

#[test]
fn the_worker_log_says_why_a_function_did_not_start_and_a_deploy_was_refused() {
    let w = Worker::start(&[]);
    let folder = w.dir.join("broken");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("main.py"), "import onnxruntime_is_not_here\n").expect("main.py");
    let spec = json!({"name": "broken", "command": ["python3", folder.join("main.py")]});
    assert_eq!(
        http(&w, "POST", "/v1/functions", Some(&spec.to_string())).0,
        201
    );
    let (code, body, _) = http(&w, "POST", "/v1/functions/broken/invoke", Some("{}"));
    assert_eq!(code, 502, "{body}");
    let log = w.log();
    let line = log
        .lines()
        .find(|l| l.contains("failed to start"))
        .unwrap_or_else(|| panic!("no start failure in the log:\n{log}"));
    assert!(line.contains("WARN") && line.contains("broken"), "{line}");
    assert!(
        line.contains("ModuleNotFoundError"),
        "the stderr tail: {line}"
    );
    assert!(
        line.contains("scripts/install-python-deps.sh"),
        "the hint: {line}"
    );
    let nocmd = json!({"spec": {"name": "p", "slo_ms": 10, "stages": [{"name": "a"}]},
        "base_dir": "/tmp"});
    assert_eq!(
        http(&w, "POST", "/v1/pipelines", Some(&nocmd.to_string())).0,
        400
    );
    let stage = json!({"name": "s", "command": ["/nonexistent/stage"]});
    // Beside the data directory, which no sandbox may see.
    let base = w.dir.join("stages");
    std::fs::create_dir_all(&base).expect("base dir");
    let bad = json!({"spec": {"name": "q", "slo_ms": 10, "stages": [stage]}, "base_dir": base});
    assert_eq!(
        http(&w, "POST", "/v1/pipelines", Some(&bad.to_string())).0,
        502
    );
    let log = w.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("deploy refused"))
        .collect();
    assert_eq!(refused.len(), 2, "{log}");
    assert!(
        refused[0].contains("stage a has no command"),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].contains("stage s did not start") && refused[1].contains("nonexistent"),
        "{}",
        refused[1]
    );
}

/// Runs `program args` as uid/gid 65534 with `home` as its HOME, in the repository.
fn as_nobody(home: &Path, program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir(repo());
    c
}

/// Why the non-root walk-through cannot run here, if it cannot.
fn nobody_unavailable(home: &Path) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: cannot switch to another user".into());
    }
    let probe = as_nobody(home, Path::new("/bin/sh"), &[])
        .args([
            "-c",
            "test -r examples/functions/hello/main.py && test -x \"$0\"",
        ])
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .status();
    match probe {
        Ok(s) if s.success() => None,
        Ok(_) => Some("uid 65534 cannot read this checkout or run its binary".into()),
        Err(e) => Some(format!("setpriv: {e}")),
    }
}

#[test]
fn the_walk_through_works_for_a_user_who_is_not_root() {
    let dir = common::fresh_dir();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let _ = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&dir)
        .status();
    if let Some(why) = nobody_unavailable(&home) {
        eprintln!("SKIPPING the non-root walk-through: {why}");
        return;
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sluice"));
    // The embedded defaults, but a free port: the data directory must default under HOME.
    let log = std::fs::File::create(dir.join("worker.log")).expect("log");
    let mut worker = as_nobody(
        &home,
        &bin,
        &["worker", "--examples", "--listen", "127.0.0.1:0"],
    )
    .env("SLUICE_LOG", "info")
    .stderr(log)
    .spawn()
    .expect("start the worker");
    let data = home.join(".local/share/sluice");
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(data.join("listen.addr")) {
            break a.trim().to_string();
        }
        if Instant::now() > deadline || matches!(worker.try_wait(), Ok(Some(_))) {
            let _ = worker.kill();
            let log = std::fs::read_to_string(dir.join("worker.log")).unwrap_or_default();
            panic!("the worker did not come up as uid 65534:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let url = format!("http://{addr}");
    let run = |args: &[&str]| {
        let out = as_nobody(&home, &bin, args)
            .env("SLUICE_URL", &url)
            .output()
            .expect("run sluice");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (ok, status, err) = run(&["status", "--json"]);
    assert!(ok, "{err}");
    let status: Value = serde_json::from_str(&status).expect("status JSON");
    let missing = status["limits_not_enforced"].to_string();
    assert!(missing.contains("separate_users"), "{status}");
    let (ok, out, err) = run(&["invoke", "hello", r#"{"name":"sluice"}"#]);
    assert!(ok && out.contains("sluice"), "{out}{err}");
    let spec = greet_folder(&home);
    let _ = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&home)
        .status();
    let (ok, out, err) = run(&["fn", "register", &spec.display().to_string()]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(&["invoke", "greet", r#"{"who":"world"}"#, "--async"]);
    assert!(ok && out.contains("hi world"), "{out}{err}");
    let (ok, out, _) = run(&["invocations", "list"]);
    assert!(ok && out.contains("greet"), "{out}");
    let (ok, out, _) = run(&["logs", "greet"]);
    assert!(ok && out.contains("greeting world"), "{out}");
    let _ = Command::new("kill").arg(worker.id().to_string()).status();
    let _ = worker.wait();
    let log = std::fs::read_to_string(dir.join("worker.log")).unwrap_or_default();
    let warnings = log.matches("limits not enforced").count();
    assert_eq!(warnings, 1, "one warning at start:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
