//! The minimal root of a sandbox as a `Plan`: the host's system directories read-only
//! (symlinks kept, as on merged-`/usr` hosts), an `/etc` from an allow-list without secrets
//! (with generated `passwd`, `group` and `hosts`), fresh `/dev`, `/proc` and a size-limited
//! `/tmp`, the sandbox's own socket directory at [`SOCKET_DIR`], the caller's read-write
//! directories, and the function's own files read-only: its program (and interpreter tree), the
//! command's arguments and environment values that name host paths, its workdir and `files`.
//! Paths the function names are refused when hidden (the launcher's data, `/root`, `/home`,
//! `/proc`…) or, for a root launcher, when the sandbox's user could not reach them on the host.

pub(crate) use crate::admit::Context;
use crate::admit::{dot_dot_dirs, Binds};
use crate::plan::{Mount, Plan};
use crate::resolve::{self, Program, SYSTEM_DIRS};
use crate::spec::{Root, SandboxSpec};
use crate::SandboxError;
use std::path::{Path, PathBuf};

/// Where the socket directory is inside every isolated sandbox.
pub const SOCKET_DIR: &str = "/run/sluice";
/// `PATH` after the program's own directories.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// `/etc` entries bound read-only where present: name resolution, the dynamic loader, time
/// zone, TLS roots, the OS's identity, alternatives, Python's and GPU vendors' configuration.
/// `passwd`, `group` and `hosts` are generated; `shadow`, `gshadow`, `sudoers`, `ssh`,
/// `machine-id`, pip and git configuration and everything else stay out.
pub const ETC_ALLOW: [&str; 26] = [
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "services",
    "protocols",
    "networks",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "os-release",
    "lsb-release",
    "debian_version",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "crypto-policies",
    "alternatives",
    "mime.types",
    "terminfo",
    "OpenCL",
    "vulkan",
    "nvidia",
    "glvnd",
];

const PASSWD: &str = "root:x:0:0:root:/root:/usr/sbin/nologin\n\
sluice:x:1000:1000:sluice function:/tmp:/usr/sbin/nologin\n\
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nsluice:x:1000:\nnogroup:x:65534:\n";
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
/// The DNS forwarder of the user-mode network stack.
pub(crate) const SLIRP_RESOLV: &str = "nameserver 10.0.2.3\n";

fn bad(msg: impl Into<String>) -> SandboxError {
    SandboxError::BadSpec(msg.into())
}

/// The program of `spec`, resolved on the host, and whether the operator's `PATH` found it.
fn program(
    spec: &SandboxSpec,
    cx: &Context<'_>,
    base: &Path,
) -> Result<(Program, bool), SandboxError> {
    let Some(name) = spec.command.first().filter(|p| !p.is_empty()) else {
        return Err(bad("command names no program"));
    };
    let own_path = spec.env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v);
    let path_var = own_path.map_or(cx.path_var, String::as_str);
    if name.contains('/') {
        return resolve::resolve_path(Path::new(name), base, path_var)
            .map(|p| (p, false))
            .ok_or_else(|| bad(format!("program {name} is not an executable file")));
    }
    resolve::resolve(name, path_var)
        .map(|p| (p, own_path.is_none()))
        .ok_or_else(|| bad(format!("program {name} is not found in PATH")))
}

/// The environment values of the function that name host paths (`:`-lists included).
fn env_paths(env: &[(String, String)]) -> Vec<PathBuf> {
    env.iter()
        .filter(|(k, _)| k != "PATH")
        .flat_map(|(_, v)| v.split(':'))
        .filter(|s| s.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// The system directories, as directories or the symlinks they are.
pub(crate) fn system_mounts() -> Vec<Mount> {
    SYSTEM_DIRS
        .iter()
        .filter_map(|d| {
            let p = Path::new(d);
            let meta = std::fs::symlink_metadata(p).ok()?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(p).ok()?;
                Some(Mount::Symlink {
                    target,
                    dst: p.to_path_buf(),
                })
            } else {
                meta.is_dir().then(|| Mount::RoBind {
                    src: p.to_path_buf(),
                    dst: p.to_path_buf(),
                })
            }
        })
        .collect()
}

fn etc_mounts(network: bool) -> Vec<Mount> {
    let file = |name: &str, data: &str| Mount::File {
        dst: Path::new("/etc").join(name),
        data: data.to_string(),
    };
    let mut m = vec![
        file("passwd", PASSWD),
        file("group", GROUP),
        file("hosts", HOSTS),
    ];
    if network {
        m.push(file("resolv.conf", SLIRP_RESOLV));
    }
    let python_dirs = std::fs::read_dir("/etc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("python3"));
    let mut names: Vec<String> = ETC_ALLOW.iter().map(|s| s.to_string()).collect();
    names.extend(python_dirs);
    if !network {
        names.push("resolv.conf".into());
    }
    for name in names {
        let p = Path::new("/etc").join(&name);
        if let Ok(src) = std::fs::canonicalize(&p) {
            m.push(Mount::RoBind { src, dst: p });
        }
    }
    m
}

/// GPU device nodes present on the host (`/dev/nvidia*`, MIG capabilities in
/// `/dev/nvidia-caps`).
pub(crate) fn gpu_devices() -> Vec<PathBuf> {
    let nodes = |dir: &str, prefix: &str| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut v = nodes("/dev", "nvidia");
    v.extend(nodes("/dev/nvidia-caps", "nvidia-cap"));
    v.sort();
    v
}

/// The environment inside: a clean base, the function's, the caller's, and the socket.
fn environment(spec: &SandboxSpec, prog: &Program) -> Vec<(String, String)> {
    let mut path: Vec<String> = prog
        .path_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    path.push(DEFAULT_PATH.to_string());
    let mut env: Vec<(String, String)> = [
        ("PATH", path.join(":")),
        ("HOME", "/tmp".into()),
        ("TMPDIR", "/tmp".into()),
        ("LANG", "C.UTF-8".into()),
        ("USER", "sluice".into()),
        ("LOGNAME", "sluice".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in spec.env.iter().chain(&spec.extra_env) {
        env.retain(|(n, _)| n != k);
        env.push((k.clone(), v.clone()));
    }
    env.retain(|(n, _)| n != "SLUICE_SOCKET");
    env.push((
        "SLUICE_SOCKET".into(),
        format!("{SOCKET_DIR}/{}", crate::SOCKET_NAME),
    ));
    env
}

/// The plan of an isolated sandbox on the host's minimal root ([`Root::HostMinimal`]) for
/// `spec`; image roots are planned by `image_root`.
pub(crate) fn plan(spec: &SandboxSpec, cx: &Context<'_>) -> Result<Plan, SandboxError> {
    if !matches!(spec.root, Root::HostMinimal) {
        return Err(bad("not a host root"));
    }
    let mut binds = Binds::default();
    let workdir = match &spec.workdir {
        Some(w) => {
            let (src, dst) = cx
                .admit(w, Path::new("/"))
                .map_err(|e| bad(format!("workdir: {e}")))?;
            if !src.is_dir() {
                return Err(bad(format!("workdir {} is not a directory", w.display())));
            }
            binds.add((src, dst.clone()));
            Some(dst)
        }
        None => None,
    };
    let base = workdir.clone().unwrap_or_else(|| PathBuf::from("/"));
    let (prog, trusted_program) = program(spec, cx, &base)?;
    let mut trusted = Vec::new();
    for (i, b) in prog.binds.iter().enumerate() {
        if trusted_program {
            // Found in the operator's PATH: bound even where the sandbox's user cannot reach
            // it (the launcher reveals it), unless hidden.
            if let Ok(src) = std::fs::canonicalize(b) {
                if !cx.hidden.iter().any(|h| src.starts_with(h)) {
                    trusted.push(src.clone());
                    binds.add((src, b.clone()));
                }
            }
        } else {
            match cx.admit(b, &base) {
                Ok(pair) => binds.add(pair),
                Err(e) if i == 0 => return Err(bad(format!("program: {e}"))),
                Err(_) => {}
            }
        }
    }
    for p in &spec.read_only {
        let src = std::fs::canonicalize(p)
            .map_err(|e| bad(format!("read-only path {}: {e}", p.display())))?;
        trusted.push(src.clone());
        binds.add((src.clone(), src));
    }
    for f in &spec.files {
        let pair = cx.admit(f, &base).map_err(|e| bad(format!("files: {e}")))?;
        binds.add(pair);
    }
    let args = spec
        .command
        .iter()
        .skip(1)
        .filter(|a| a.starts_with('/') || a.contains('/'));
    let mut passed = Vec::new();
    for p in args.map(PathBuf::from).chain(env_paths(&spec.env)) {
        // Arguments and values that are not admissible host paths are just text.
        if let Ok(pair) = cx.admit(&p, &base) {
            binds.add(pair);
            passed.extend(dot_dot_dirs(&base.join(&p)));
        }
    }

    let mut mounts = system_mounts();
    mounts.extend(etc_mounts(spec.network));
    mounts.push(Mount::Dev { dst: "/dev".into() });
    if spec.gpu {
        for d in gpu_devices() {
            mounts.push(Mount::DevBind {
                src: d.clone(),
                dst: d,
            });
        }
    }
    mounts.push(Mount::Proc {
        dst: "/proc".into(),
    });
    if spec.gpu {
        mounts.push(Mount::RoBind {
            src: "/sys".into(),
            dst: "/sys".into(),
        });
    }
    mounts.push(Mount::Tmpfs {
        dst: "/tmp".into(),
        size: spec.limits.tmp_bytes,
        mode: 0o1777,
    });
    mounts.push(Mount::Bind {
        src: cx.socket_dir.to_path_buf(),
        dst: SOCKET_DIR.into(),
    });
    trusted.push(cx.socket_dir.to_path_buf());
    let mut rw: Vec<PathBuf> = Vec::new();
    for d in &spec.read_write {
        let src = std::fs::canonicalize(d)
            .map_err(|e| bad(format!("read-write directory {}: {e}", d.display())))?;
        if !rw.contains(&src) {
            rw.push(src);
        }
    }
    rw.sort();
    for src in rw {
        trusted.push(src.clone());
        mounts.push(Mount::Bind {
            src: src.clone(),
            dst: src,
        });
    }
    mounts.extend(binds.into_mounts(&passed));
    mounts.push(Mount::RemountRo { dst: "/".into() });

    let mut command = spec.command.clone();
    command[0] = prog.path.display().to_string();
    Ok(Plan {
        mounts,
        chdir: workdir.unwrap_or_else(|| PathBuf::from("/tmp")),
        env: environment(spec, &prog),
        command,
        trusted,
        user: None,
    })
}

#[cfg(test)]
#[path = "rootfs_tests.rs"]
mod tests;
