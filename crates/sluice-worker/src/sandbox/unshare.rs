//! `unshare` isolation (util-linux), used where bubblewrap is missing: new mount, PID, IPC, UTS,
//! cgroup (and, unless the spec allows the network, net) namespaces; inside them a small `sh`
//! script makes every host mount read-only, binds the private tmp at `/tmp` and the sandbox dir
//! read-write at its own path, builds a minimal `/dev`, makes `/proc/sys` read-only, binds the
//! layout's extra directories (MPS pipes, a pipeline group's shared memory) read-write at their own
//! paths, and execs the function through `setpriv` with every capability dropped.

use super::launch::Layout;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const PROGRAM: &str = "unshare";

/// Extra directories the script can bind (fds 4 to 9).
const MAX_BINDS: usize = 6;

/// Arguments: `$1` sandbox dir, `$2` workdir, `$3` B then B extra directories to bind, then N then
/// N pairs (mount point, extra remount options), then M then M device nodes, then `--` and the
/// command. Mounts use `-n`: the host's utab is read-only in here. The dir is reached through fd 3,
/// and the extra directories through fds 4.., opened first, because the private /tmp and the new
/// /dev (with its own /dev/shm) may cover their paths.
const SCRIPT: &str = r#"set -eu
d=$1; w=$2; b=$3; shift 3
exec 3<"$d"
i=0
while [ "$i" -lt "$b" ]; do
  eval "exec $((4 + i))<\"\$1\""; eval "bp$i=\$1"
  shift; i=$((i + 1))
done
n=$1; shift
hp=$PATH; PATH=/usr/sbin:/usr/bin:/sbin:/bin
while [ "$n" -gt 0 ]; do
  mount -n -o "remount,bind,ro$2" "$1" 2>/dev/null || echo "sluice: cannot make $1 read-only" >&2
  shift 2; n=$((n - 1))
done
mount -n --bind "$d/tmp" /tmp
mount -n -o remount,bind,rw,nosuid,nodev /tmp
mkdir -p "$d"
mount -n --no-canonicalize --bind /proc/self/fd/3 "$d"
mount -n -o remount,bind,rw,nosuid,nodev "$d"
exec 3<&-
s=/tmp/.sluice-dev
mkdir "$s"
mount -n -t tmpfs -o mode=0755,nosuid,size=64k sluice-dev "$s"
for f in null zero full random urandom tty; do
  : >"$s/$f"; mount -n --bind "/dev/$f" "$s/$f"
done
n=$1; shift
while [ "$n" -gt 0 ]; do
  t="$s/${1#/dev/}"; mkdir -p "${t%/*}"; : >"$t"; mount -n --bind "$1" "$t"
  shift; n=$((n - 1))
done
mkdir "$s/shm" "$s/pts"
mount -n -t tmpfs -o mode=1777,nosuid,nodev sluice-shm "$s/shm"
if mount -n -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$s/pts" 2>/dev/null; then
  ln -s pts/ptmx "$s/ptmx"
fi
ln -s /proc/self/fd "$s/fd"; ln -s /proc/self/fd/0 "$s/stdin"
ln -s /proc/self/fd/1 "$s/stdout"; ln -s /proc/self/fd/2 "$s/stderr"
mount -n --move "$s" /dev
rmdir "$s"
for p in /proc/sys /proc/sysrq-trigger /proc/irq /proc/bus; do
  if [ -e "$p" ]; then mount -n --bind -o ro "$p" "$p" 2>/dev/null || true; fi
done
i=0
while [ "$i" -lt "$b" ]; do
  eval "p=\$bp$i"; f=$((4 + i))
  mkdir -p "$p"
  mount -n --no-canonicalize --bind "/proc/self/fd/$f" "$p"
  mount -n -o remount,bind,rw,nosuid,nodev "$p"
  eval "exec $f<&-"
  i=$((i + 1))
done
cd "$w"
PATH=$hp
shift
if command -v setpriv >/dev/null 2>&1; then
  exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all -- "$@"
fi
echo "sluice: setpriv not found, the function keeps its capabilities" >&2
exec "$@"
"#;

fn namespace_flags(network: bool) -> Vec<&'static str> {
    let mut f = vec![
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--ipc",
        "--uts",
        "--cgroup",
    ];
    if !network {
        f.push("--net");
    }
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Unprivileged: a user namespace makes the mounts possible (no cgroups then).
        f.push("--map-root-user");
    }
    f
}

/// Arguments to `unshare` that run `command` in the sandbox described by `l`; `mounts` are the
/// host's mounts (see [`host_mounts`]).
pub fn args(l: &Layout, command: &[String], mounts: &[(PathBuf, String)]) -> Vec<OsString> {
    let mut a: Vec<OsString> = namespace_flags(l.network)
        .into_iter()
        .map(OsString::from)
        .collect();
    a.extend(["--", "/bin/sh", "-c", SCRIPT, "sluice-sandbox"].map(OsString::from));
    a.push(l.dir.clone().into_os_string());
    a.push(l.workdir.clone().into_os_string());
    // Fds 4..=9 carry the binds (a POSIX shell redirects single-digit fds only).
    let binds = &l.binds[..l.binds.len().min(MAX_BINDS)];
    a.push(binds.len().to_string().into());
    a.extend(binds.iter().map(|p| p.clone().into_os_string()));
    let keep: Vec<&(PathBuf, String)> =
        mounts.iter().filter(|(p, _)| !covered(p, &l.dir)).collect();
    a.push(keep.len().to_string().into());
    for (p, opts) in keep {
        a.push(p.clone().into_os_string());
        a.push(opts.into());
    }
    a.push(l.devices.len().to_string().into());
    a.extend(l.devices.iter().map(|d| d.clone().into_os_string()));
    a.push("--".into());
    a.extend(command.iter().map(OsString::from));
    a
}

/// Mounts the script must not make read-only: replaced (/proc, /dev, /tmp) or the sandbox's own.
fn covered(p: &Path, dir: &Path) -> bool {
    ["/proc", "/dev", "/tmp"].iter().any(|x| p.starts_with(x)) || p.starts_with(dir)
}

/// The host's mount points with the per-mount options a read-only remount must keep, from
/// `/proc/self/mountinfo`.
pub fn host_mounts() -> Vec<(PathBuf, String)> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| parse_mountinfo(&s))
        .unwrap_or_default()
}

fn parse_mountinfo(text: &str) -> Vec<(PathBuf, String)> {
    let keep = [
        "nosuid",
        "nodev",
        "noexec",
        "noatime",
        "nodiratime",
        "relatime",
    ];
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(' ').skip(4);
            let point = unescape(f.next()?);
            let opts: String = f
                .next()?
                .split(',')
                .filter(|o| keep.contains(o))
                .map(|o| format!(",{o}"))
                .collect();
            Some((PathBuf::from(point), opts))
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space and so on).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `unshare` can create the namespaces a sandbox needs here.
pub fn works() -> bool {
    let mut c = Command::new(PROGRAM);
    c.args(namespace_flags(false)).args(["--", "true"]);
    super::launch::trial(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_points_and_options() {
        let text = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
                    23 22 0:5 / /my\\040disk ro,nosuid,nodev - tmpfs t rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m[0], (PathBuf::from("/"), ",relatime".to_string()));
        assert_eq!(
            m[1],
            (PathBuf::from("/my disk"), ",nosuid,nodev".to_string())
        );
    }

    #[test]
    fn replaced_mounts_are_left_alone() {
        let l = Layout::for_test(PathBuf::from("/var/sb/3"));
        let mounts = vec![
            (PathBuf::from("/"), String::new()),
            (PathBuf::from("/proc"), String::new()),
            (PathBuf::from("/dev/shm"), String::new()),
            (PathBuf::from("/var/sb/3/x"), String::new()),
            (PathBuf::from("/sys"), String::new()),
        ];
        let a: Vec<String> = args(&l, &["f".to_string()], &mounts)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let at = a
            .iter()
            .position(|x| x == "sluice-sandbox")
            .map_or(0, |i| i + 3);
        assert_eq!(a[at..at + 6], ["0", "2", "/", "", "/sys", ""]);
        assert!(a.contains(&"--net".to_string()));
        assert_eq!(&a[a.len() - 3..], ["0", "--", "f"]);
    }

    #[test]
    fn binds_come_first_and_are_capped_at_six() {
        let mut l = Layout::for_test(PathBuf::from("/var/sb/4"));
        l.binds = (0..8)
            .map(|i| PathBuf::from(format!("/dev/shm/g{i}")))
            .collect();
        let a: Vec<String> = args(&l, &["f".to_string()], &[])
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let at = a
            .iter()
            .position(|x| x == "sluice-sandbox")
            .map_or(0, |i| i + 3);
        assert_eq!(a[at], "6");
        assert_eq!(a[at + 1], "/dev/shm/g0");
        assert_eq!(a[at + 6], "/dev/shm/g5");
        assert_eq!(a[at + 7], "0", "then the host mounts");
    }
}
