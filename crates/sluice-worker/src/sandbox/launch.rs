//! Starting a sandbox: the on-disk layout (socket, private tmp), the clean environment, the
//! command for each isolation, and the pre-exec hooks every mode shares (join the cgroup, die
//! with the worker, own process group). Also the trial runs `Launcher::detect` relies on.

use super::cgroup::Cgroup;
use super::process::Sandbox;
use super::{bwrap, unshare, Isolation, SandboxError, SandboxRequest};
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// File name of the function's socket inside the sandbox dir.
pub const SOCKET_NAME: &str = "sluice.sock";
/// Longest usable Unix socket path (`sun_path` holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where things are, as the function sees them.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The sandbox dir (same path inside and outside).
    pub dir: PathBuf,
    /// The private tmp on the host (`<dir>/tmp`).
    pub tmp: PathBuf,
    /// The socket path (same inside and outside).
    pub socket: PathBuf,
    /// Working directory inside the sandbox.
    pub workdir: PathBuf,
    pub network: bool,
    /// Device nodes to expose (GPU functions).
    pub devices: Vec<PathBuf>,
    /// Extra host directories bound read-write at their own path (MPS pipe and log dirs, the
    /// shared-memory directory of a pipeline stage's co-location group).
    pub binds: Vec<PathBuf>,
}

impl Layout {
    #[cfg(test)]
    pub fn for_test(dir: PathBuf) -> Layout {
        Layout {
            tmp: dir.join("tmp"),
            socket: dir.join(SOCKET_NAME),
            workdir: PathBuf::from("/tmp"),
            dir,
            network: false,
            devices: Vec::new(),
            binds: Vec::new(),
        }
    }
}

/// GPU device nodes present on the host (`/dev/nvidia*`, and the MIG capabilities under
/// `/dev/nvidia-caps`).
fn gpu_devices() -> Vec<PathBuf> {
    let nodes = |dir: &str, prefix: &str| -> Vec<PathBuf> {
        fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
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

fn io_err(what: &str, path: &Path, source: std::io::Error) -> SandboxError {
    SandboxError::Io {
        what: format!("{what} {}", path.display()),
        source,
    }
}

/// Prepares the dir, the cgroup and the process, and starts it.
pub fn spawn(
    isolation: Isolation,
    cgroup_mode: super::CgroupMode,
    cgroup_root: &Path,
    req: SandboxRequest<'_>,
) -> Result<Sandbox, SandboxError> {
    let spec = req.spec;
    let Some(program) = spec.command.first().filter(|p| !p.is_empty()) else {
        return Err(SandboxError::BadSpec("command names no program".into()));
    };
    let dir = req.dir;
    let socket = dir.join(SOCKET_NAME);
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(SandboxError::BadSpec(format!(
            "socket path {} is longer than {MAX_SOCKET_PATH} bytes",
            socket.display()
        )));
    }
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).map_err(|e| io_err("creating", &tmp, e))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))
        .map_err(|e| io_err("chmod", &tmp, e))?;
    match fs::remove_file(&socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_err("removing stale", &socket, e))
        }
        _ => {}
    }
    let isolated = isolation != Isolation::Plain;
    let env_get = |k: &str| req.extra_env.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let layout = Layout {
        workdir: spec.workdir.clone().unwrap_or_else(|| {
            if isolated {
                "/tmp".into()
            } else {
                tmp.clone()
            }
        }),
        network: spec.resources.network,
        devices: if spec.resources.gpu {
            gpu_devices()
        } else {
            Vec::new()
        },
        binds: [
            "CUDA_MPS_PIPE_DIRECTORY",
            "CUDA_MPS_LOG_DIRECTORY",
            "SLUICE_SHM_DIR",
        ]
        .iter()
        .filter_map(|k| env_get(k).map(PathBuf::from))
        .filter(|p| p.is_dir())
        .collect(),
        dir: dir.clone(),
        tmp,
        socket,
    };

    let mut cmd = match isolation {
        Isolation::Bubblewrap => {
            let mut c = Command::new(bwrap::PROGRAM);
            c.args(bwrap::args(&layout, &spec.command));
            c
        }
        Isolation::Unshare => {
            let mut c = Command::new(unshare::PROGRAM);
            c.args(unshare::args(
                &layout,
                &spec.command,
                &unshare::host_mounts(),
            ));
            c
        }
        Isolation::Plain => {
            let mut c = Command::new(program);
            c.args(&spec.command[1..]).current_dir(&layout.workdir);
            c
        }
    };
    let inner_tmp = if isolated {
        Path::new("/tmp")
    } else {
        &layout.tmp
    };
    let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string());
    cmd.env_clear()
        .env("PATH", path)
        .env("HOME", inner_tmp)
        .env("TMPDIR", inner_tmp)
        .env("LANG", "C.UTF-8")
        .envs(&spec.env)
        .envs(req.extra_env.iter().map(|(k, v)| (k, v)))
        .env("SLUICE_SOCKET", &layout.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);

    let cgroup = Cgroup::create(cgroup_mode, cgroup_root, req.id, &spec.resources)?;
    let procs: Vec<File> = match cgroup.as_ref().map(Cgroup::open_procs).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(source) => {
            let path = cgroup.as_ref().and_then(|c| c.dirs().first().cloned());
            if let Some(c) = &cgroup {
                c.remove();
            }
            return Err(SandboxError::Cgroup {
                path: path.unwrap_or_default(),
                source,
            });
        }
    };
    let fds: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: runs between fork and exec; uses only async-signal-safe calls (write, prctl) and
    // reads the captured fds without allocating.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let launched = tokio::process::Command::from(cmd).spawn();
    drop(procs);
    let launcher = match isolation {
        Isolation::Bubblewrap => bwrap::PROGRAM,
        Isolation::Unshare => unshare::PROGRAM,
        Isolation::Plain => program.as_str(),
    };
    match launched {
        Ok(child) => Ok(Sandbox::start(req.id, isolation, child, cgroup, layout)),
        Err(source) => {
            if let Some(c) = &cgroup {
                c.remove();
            }
            Err(SandboxError::Launch {
                program: launcher.to_string(),
                source,
            })
        }
    }
}

/// Runs a short trial command (output discarded); `true` if it exits 0 within 5 s.
pub fn trial(mut c: Command) -> bool {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let Ok(mut child) = c.spawn() else {
        return false;
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}
