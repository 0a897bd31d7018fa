//! The developer scripts that take arguments of their own and are not exercised end to end by
//! another test: malformed arguments get a clear message and exit status 2 before any work.

use std::path::PathBuf;
use std::process::Command;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(name)
}

/// Runs `scripts/test-as-user.sh` with `args`: its exit status and standard error.
fn test_as_user(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("bash")
        .arg(script("test-as-user.sh"))
        .args(args)
        .output()
        .expect("bash runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) takes no arguments, touches no memory of ours and always succeeds.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn test_as_user_refuses_bad_arguments_before_building_anything() {
    let (code, err) = test_as_user(&["--frobnicate"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown argument --frobnicate"), "{err}");
    let (code, err) = test_as_user(&["--user"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--user needs a user name"), "{err}");
    let cases: &[(&[&str], &str)] = if is_root() {
        &[
            (
                &["--user", "no-such-user-sluice"],
                "no user no-such-user-sluice",
            ),
            (&["--user", "root"], "--user must not be root"),
        ]
    } else {
        &[(&["--user", "nobody"], "run as root")]
    };
    for (args, message) in cases {
        let (code, err) = test_as_user(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(!err.contains("building the tests"), "{args:?}: {err}");
    }
}
