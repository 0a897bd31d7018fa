//! Bubblewrap isolation: the `bwrap` command line that carries out a [`Plan`] — every namespace
//! unshared (the user namespace included, with the function as [`INNER_UID`]), the plan's mounts
//! in order, the seccomp filter from an inherited pipe, all capabilities dropped, a new session,
//! death with the parent — and, for a networked sandbox, the info and block pipes through which
//! the launcher learns the sandbox's pid and holds it until its network is up.

use crate::plan::{Mount, Plan};
use std::ffi::OsString;
use std::process::Command;

/// The program.
pub(crate) const PROGRAM: &str = "bwrap";

/// Inherited descriptors the command line refers to.
#[derive(Debug, Default)]
pub(crate) struct Fds {
    /// The seccomp program (raw `sock_filter` array).
    pub seccomp: Option<i32>,
    /// One per [`Mount::File`] of the plan, in order: the file's contents.
    pub files: Vec<i32>,
    /// Where bwrap writes `{"child-pid": N}` (networked sandboxes).
    pub info: Option<i32>,
    /// What bwrap waits on before it runs the command (networked sandboxes).
    pub block: Option<i32>,
}

/// Arguments to `bwrap` that run `plan` with the descriptors `fds`.
pub(crate) fn args(plan: &Plan, fds: &Fds) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut s = |x: &str| a.push(x.into());
    for flag in [
        "--die-with-parent",
        "--new-session",
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--cap-drop",
        "ALL",
    ] {
        s(flag);
    }
    let (uid, gid) = plan.inner_ids();
    s("--uid");
    s(&uid.to_string());
    s("--gid");
    s(&gid.to_string());
    s("--hostname");
    s("sluice");
    if let Some(fd) = fds.info {
        s("--info-fd");
        s(&fd.to_string());
    }
    if let Some(fd) = fds.block {
        s("--block-fd");
        s(&fd.to_string());
    }
    if let Some(fd) = fds.seccomp {
        s("--seccomp");
        s(&fd.to_string());
    }
    let mut files = fds.files.iter();
    for m in &plan.mounts {
        let pair = |a: &mut Vec<OsString>, flag: &str, x: &std::path::Path, y: &std::path::Path| {
            a.push(flag.into());
            a.push(x.into());
            a.push(y.into());
        };
        match m {
            Mount::RoBind { src, dst } => pair(&mut a, "--ro-bind", src, dst),
            Mount::Bind { src, dst } => pair(&mut a, "--bind", src, dst),
            Mount::DevBind { src, dst } => pair(&mut a, "--dev-bind", src, dst),
            Mount::Symlink { target, dst } => pair(&mut a, "--symlink", target, dst),
            Mount::Tmpfs { dst, size, mode } => {
                for x in ["--perms", &format!("{mode:o}"), "--size", &size.to_string()] {
                    a.push(x.into());
                }
                a.push("--tmpfs".into());
                a.push(dst.into());
            }
            Mount::Dir { dst } => {
                a.push("--dir".into());
                a.push(dst.into());
            }
            Mount::Proc { dst } => {
                a.push("--proc".into());
                a.push(dst.into());
            }
            Mount::Dev { dst } => {
                a.push("--dev".into());
                a.push(dst.into());
            }
            Mount::File { dst, .. } => {
                if let Some(fd) = files.next() {
                    a.push("--ro-bind-data".into());
                    a.push(fd.to_string().into());
                    a.push(dst.into());
                }
            }
            Mount::RemountRo { dst } => {
                a.push("--remount-ro".into());
                a.push(dst.into());
            }
        }
    }
    a.push("--chdir".into());
    a.push(plan.chdir.clone().into());
    a.push("--".into());
    a.extend(plan.command.iter().map(OsString::from));
    a
}

/// Whether `bwrap` is installed and can create an unprivileged sandbox here.
pub(crate) fn works() -> bool {
    let mut mounts = crate::rootfs::system_mounts();
    mounts.push(Mount::Dev { dst: "/dev".into() });
    mounts.push(Mount::Proc {
        dst: "/proc".into(),
    });
    let plan = Plan {
        mounts,
        chdir: "/".into(),
        command: vec!["true".into()],
        ..Plan::default()
    };
    let mut c = Command::new(PROGRAM);
    c.args(args(&plan, &Fds::default()));
    crate::launch::trial(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::INNER_UID;
    use std::path::PathBuf;

    #[test]
    fn mounts_keep_their_order_and_files_take_their_fds() {
        let plan = Plan {
            mounts: vec![
                Mount::Symlink {
                    target: "usr/bin".into(),
                    dst: "/bin".into(),
                },
                Mount::File {
                    dst: "/etc/passwd".into(),
                    data: "x".into(),
                },
                Mount::Tmpfs {
                    dst: "/tmp".into(),
                    size: 1 << 20,
                    mode: 0o1777,
                },
                Mount::RoBind {
                    src: "/tmp/fn".into(),
                    dst: "/tmp/fn".into(),
                },
                Mount::RemountRo { dst: "/".into() },
            ],
            chdir: PathBuf::from("/tmp/fn"),
            command: vec!["/usr/bin/python3".into(), "main.py".into()],
            ..Plan::default()
        };
        let fds = Fds {
            seccomp: Some(7),
            files: vec![9],
            info: Some(11),
            block: None,
        };
        let a: Vec<String> = args(&plan, &fds)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let at = |x: &str| a.iter().position(|y| y == x).unwrap_or(usize::MAX);
        assert!(
            at("--tmpfs") < at("/tmp/fn"),
            "tmpfs before binds under it: {a:?}"
        );
        assert_eq!(a[at("--ro-bind-data") + 1], "9");
        assert_eq!(a[at("--seccomp") + 1], "7");
        assert_eq!(a[at("--info-fd") + 1], "11");
        assert_eq!(a[at("--size") + 1], (1 << 20).to_string());
        assert_eq!(a[at("--perms") + 1], "1777");
        assert_eq!(a[at("--uid") + 1], INNER_UID.to_string());
        assert!(!a.contains(&"--block-fd".to_string()));
        assert!(
            !a.contains(&"--share-net".to_string()),
            "never the host network"
        );
        assert_eq!(&a[a.len() - 3..], ["--", "/usr/bin/python3", "main.py"]);
    }
}
