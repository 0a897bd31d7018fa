//! `unshare` isolation (util-linux), used where bubblewrap is missing: `unshare` creates the user
//! namespace (the function as [`INNER_UID`], mapped to the sandbox's host user, capabilities kept
//! for the setup only) and new mount, PID, IPC, UTS, cgroup and network namespaces, then runs the
//! launcher's helper in its init mode (`init`), which builds the same root as bubblewrap would
//! from the plan, installs the seccomp filter and execs the function.

use crate::users::{INNER_GID, INNER_UID};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The program.
pub(crate) const PROGRAM: &str = "unshare";

/// The argument that selects the helper's init mode.
pub const INIT_ARG: &str = "__sandbox-init";

/// What the helper prints for `<helper> __sandbox-init --version`.
pub(crate) const HELPER_VERSION: &str = "sluice-sandbox-init 1";

/// A program that runs [`crate::helper_main`] when its first argument is [`INIT_ARG`] (the
/// `sluice` binary, or `sluice-sandbox-exec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Helper {
    /// Its path.
    pub program: PathBuf,
}

impl Helper {
    /// Whether `program` is such a helper (a trial run).
    pub fn works(program: &Path) -> bool {
        let out = Command::new(program)
            .args([INIT_ARG, "--version"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output();
        out.is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == HELPER_VERSION
        })
    }

    /// This process's own executable, if it is a helper.
    pub fn current_exe() -> Option<Helper> {
        let program = std::env::current_exe().ok()?;
        Helper::works(&program).then_some(Helper { program })
    }
}

fn namespace_flags(uid: u32, gid: u32) -> Vec<String> {
    [
        format!("--map-user={uid}"),
        format!("--map-group={gid}"),
        "--keep-caps".into(),
        "--mount".into(),
        "--propagation=private".into(),
        "--pid".into(),
        "--fork".into(),
        "--kill-child".into(),
        "--ipc".into(),
        "--uts".into(),
        "--cgroup".into(),
        "--net".into(),
    ]
    .to_vec()
}

/// Arguments to `unshare` that run `helper` in its init mode in fresh namespaces, as `uid` and
/// `gid` inside.
pub(crate) fn args(helper: &Path, (uid, gid): (u32, u32)) -> Vec<OsString> {
    let mut a: Vec<OsString> = namespace_flags(uid, gid)
        .into_iter()
        .map(OsString::from)
        .collect();
    a.push("--".into());
    a.push(helper.into());
    a.push(INIT_ARG.into());
    a
}

/// Whether `unshare` can create the namespaces a sandbox needs here.
pub(crate) fn works() -> bool {
    let mut c = Command::new(PROGRAM);
    c.args(namespace_flags(INNER_UID, INNER_GID))
        .args(["--", "/usr/bin/true"]);
    crate::launch::trial(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_namespace_and_the_helper_in_init_mode() {
        let a: Vec<String> = args(Path::new("/opt/sluice"), (INNER_UID, INNER_GID))
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        for flag in [
            "--mount",
            "--pid",
            "--net",
            "--ipc",
            "--uts",
            "--cgroup",
            "--kill-child",
        ] {
            assert!(a.contains(&flag.to_string()), "{flag}: {a:?}");
        }
        assert!(a.contains(&format!("--map-user={INNER_UID}")));
        assert_eq!(&a[a.len() - 3..], ["--", "/opt/sluice", INIT_ARG]);
    }
}
