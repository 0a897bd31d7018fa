//! Bubblewrap isolation: the `bwrap` command line that runs a function with every namespace
//! unshared (network only if the spec allows it), the host root read-only, a fresh `/dev` and
//! `/proc`, the sandbox's private tmp at `/tmp`, the sandbox directory read-write at its own path
//! (so the socket is reachable), GPU device nodes where asked, and death with the parent.

use super::launch::Layout;
use std::ffi::{OsStr, OsString};
use std::process::Command;

pub const PROGRAM: &str = "bwrap";

/// Arguments to `bwrap` that run `command` in the sandbox described by `l`.
pub fn args(l: &Layout, command: &[String]) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut add = |xs: &[&OsStr]| a.extend(xs.iter().map(|x| x.to_os_string()));
    let os = |s: &'static str| OsStr::new(s);
    add(&[os("--die-with-parent"), os("--unshare-all")]);
    if l.network {
        add(&[os("--share-net")]);
    }
    add(&[
        os("--cap-drop"),
        os("ALL"),
        os("--ro-bind"),
        os("/"),
        os("/"),
    ]);
    add(&[os("--dev"), os("/dev"), os("--proc"), os("/proc")]);
    // /tmp first: when the sandbox dir lies under /tmp, bwrap then creates its mount point inside
    // the private tmp (sources are always resolved on the host).
    add(&[os("--bind"), l.tmp.as_os_str(), os("/tmp")]);
    add(&[os("--bind"), l.dir.as_os_str(), l.dir.as_os_str()]);
    for d in &l.devices {
        add(&[os("--dev-bind"), d.as_os_str(), d.as_os_str()]);
    }
    for d in &l.binds {
        add(&[os("--bind"), d.as_os_str(), d.as_os_str()]);
    }
    add(&[os("--chdir"), l.workdir.as_os_str(), os("--")]);
    a.extend(command.iter().map(OsString::from));
    a
}

/// Whether `bwrap` is installed and can create a sandbox here.
pub fn works() -> bool {
    let mut c = Command::new(PROGRAM);
    c.args([
        "--unshare-all",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "true",
    ]);
    super::launch::trial(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn network_and_devices_follow_the_layout() {
        let mut l = Layout::for_test(PathBuf::from("/var/sb/1"));
        let cmd = vec!["python3".to_string(), "f.py".to_string()];
        let a: Vec<String> = args(&l, &cmd)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert!(!a.contains(&"--share-net".to_string()));
        let tmp = a.iter().position(|x| x == "/var/sb/1/tmp");
        let dir = a.iter().rposition(|x| x == "/var/sb/1");
        assert!(
            tmp < dir,
            "private /tmp is mounted before the sandbox dir: {a:?}"
        );
        assert_eq!(&a[a.len() - 3..], ["--", "python3", "f.py"]);
        l.network = true;
        l.devices.push(PathBuf::from("/dev/nvidia0"));
        let a = args(&l, &cmd);
        assert!(a.iter().any(|x| x == "--share-net"));
        assert!(a.iter().any(|x| x == "--dev-bind"));
    }
}
