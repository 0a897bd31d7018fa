//! Cgroup limits of a sandbox: detection of the usable hierarchy (v2 unified, v1 per controller,
//! or none), creation of `sluice/w<pid>-<id>` with the memory, CPU-quota and pids limits, the
//! files a new process writes itself into before exec (while still privileged), killing
//! everything inside, removal, and the sweep of a dead launcher's cgroups (killing what still runs
//! in them).

use crate::spec::Limits;
use crate::SandboxError;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Which cgroup hierarchy sandboxes get their limits from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupMode {
    /// Unified hierarchy with the memory, cpu and pids controllers.
    V2,
    /// Legacy per-controller hierarchies (`memory`, `cpu`, `pids`).
    V1,
    /// No usable cgroups: sandboxes run without resource limits.
    None,
}

impl std::fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupMode::V2 => "cgroup v2",
            CgroupMode::V1 => "cgroup v1",
            CgroupMode::None => "no cgroups",
        })
    }
}

const V1_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];
const V2_ENABLE: &str = "+memory +cpu +pids";
/// CFS period used for the CPU quota, µs.
const CPU_PERIOD_US: u64 = 100_000;

fn writable(p: &Path) -> bool {
    match CString::new(p.as_os_str().as_bytes()) {
        // SAFETY: a valid NUL-terminated path; access(2) only reads it.
        Ok(c) => unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 },
        Err(_) => false,
    }
}

/// Detects the usable hierarchy under `root` (normally `/sys/fs/cgroup`).
pub fn detect(root: &Path) -> CgroupMode {
    let listed = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| listed.split_whitespace().any(|x| x == c);
    let subtree = root.join("cgroup.subtree_control");
    if V1_CONTROLLERS.iter().all(|c| has(c)) && writable(&subtree) {
        // Enabling is idempotent and needed anyway; it fails where this is not the real root
        // (a cgroup namespace whose root holds processes).
        match fs::write(&subtree, V2_ENABLE) {
            Ok(()) => return CgroupMode::V2,
            Err(e) => tracing::warn!("cannot enable cgroup v2 controllers: {e}"),
        }
    }
    if V1_CONTROLLERS.iter().all(|c| writable(&root.join(c))) {
        return CgroupMode::V1;
    }
    CgroupMode::None
}

/// One sandbox's cgroup: a directory per controller (v1) or a single one (v2).
#[derive(Debug, Clone)]
pub struct Cgroup {
    mode: CgroupMode,
    dirs: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<(), SandboxError> {
    fs::write(path, value).map_err(|source| SandboxError::Cgroup {
        path: path.to_path_buf(),
        source,
    })
}

fn mkdir(path: &Path) -> Result<(), SandboxError> {
    fs::create_dir_all(path).map_err(|source| SandboxError::Cgroup {
        path: path.to_path_buf(),
        source,
    })
}

/// Clears what workers killed without cleanup left under `sluice/`: every cgroup whose worker is
/// no longer running (never one of a live worker) has whatever still runs in it SIGKILLed — a
/// sandbox can outlive its worker (bubblewrap's inner process sets its parent-death signal after
/// it starts, so a worker killed at that moment leaves it running) — and is then removed. Returns
/// how many cgroups went (one per sandbox, over every controller's hierarchy).
pub fn sweep(mode: CgroupMode, root: &Path) -> usize {
    let parents: Vec<PathBuf> = match mode {
        CgroupMode::None => Vec::new(),
        CgroupMode::V2 => vec![root.join("sluice")],
        CgroupMode::V1 => V1_CONTROLLERS
            .iter()
            .map(|c| root.join(c).join("sluice"))
            .collect(),
    };
    let dead: std::collections::BTreeSet<std::ffi::OsString> = parents
        .iter()
        .filter_map(|p| fs::read_dir(p).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !owner_alive(&e.file_name().to_string_lossy()))
        .map(|e| e.file_name())
        .collect();
    dead.iter()
        .filter(|name| {
            let cg = Cgroup {
                mode,
                dirs: parents
                    .iter()
                    .map(|p| p.join(name))
                    .filter(|d| d.is_dir())
                    .collect(),
            };
            cg.kill_all();
            // Killed processes leave the cgroup as they exit, a moment later.
            for _ in 0..SWEEP_TRIES {
                if cg.remove() {
                    return true;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
                cg.kill_all();
            }
            false
        })
        .count()
}

/// Attempts to remove one swept cgroup, 5 ms apart.
const SWEEP_TRIES: usize = 100;

/// The cgroup name of sandbox `id`: `w<worker pid>-<id>`, so that a sweep can tell a live
/// worker's cgroups (possibly still empty, just created) from a dead worker's leftovers.
pub fn name(id: u64) -> String {
    format!("w{}-{id}", std::process::id())
}

/// Whether the worker that created cgroup `name` is still running.
pub(crate) fn owner_alive(name: &str) -> bool {
    name.strip_prefix('w')
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

impl Cgroup {
    /// Creates `sluice/w<pid>-<id>` under `root` and writes the limits of `r`. `None` for [`CgroupMode::None`].
    pub fn create(
        mode: CgroupMode,
        root: &Path,
        id: u64,
        r: &Limits,
    ) -> Result<Option<Cgroup>, SandboxError> {
        let memory = r.memory_bytes.to_string();
        let quota = ((r.cpus * CPU_PERIOD_US as f64).round() as u64).max(1000);
        let pids = r.pids.to_string();
        let cg = match mode {
            CgroupMode::None => return Ok(None),
            CgroupMode::V2 => {
                let parent = root.join("sluice");
                // The root is exempt from the no-internal-processes rule; enabling is idempotent.
                write(&root.join("cgroup.subtree_control"), V2_ENABLE)?;
                mkdir(&parent)?;
                write(&parent.join("cgroup.subtree_control"), V2_ENABLE)?;
                let dir = parent.join(name(id));
                mkdir(&dir)?;
                let cg = Cgroup {
                    mode,
                    dirs: vec![dir.clone()],
                };
                cg.limit(&dir.join("memory.max"), &memory)?;
                if dir.join("memory.swap.max").exists() {
                    cg.limit(&dir.join("memory.swap.max"), "0")?;
                }
                cg.limit(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                cg.limit(&dir.join("pids.max"), &pids)?;
                cg
            }
            CgroupMode::V1 => {
                let dirs: Vec<PathBuf> = V1_CONTROLLERS
                    .iter()
                    .map(|c| root.join(c).join("sluice").join(name(id)))
                    .collect();
                let cg = Cgroup { mode, dirs };
                for d in &cg.dirs {
                    if let Err(e) = mkdir(d) {
                        cg.remove();
                        return Err(e);
                    }
                }
                let [mem, cpu, pid] = [&cg.dirs[0], &cg.dirs[1], &cg.dirs[2]];
                cg.limit(&mem.join("memory.limit_in_bytes"), &memory)?;
                if mem.join("memory.memsw.limit_in_bytes").exists() {
                    cg.limit(&mem.join("memory.memsw.limit_in_bytes"), &memory)?;
                }
                cg.limit(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                cg.limit(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
                cg.limit(&pid.join("pids.max"), &pids)?;
                cg
            }
        };
        Ok(Some(cg))
    }

    /// Writes one limit; on failure removes the half-made cgroup.
    fn limit(&self, path: &Path, value: &str) -> Result<(), SandboxError> {
        write(path, value).inspect_err(|_| {
            self.remove();
        })
    }

    /// The cgroup's directories (one per v1 controller, one for v2).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Opens every `cgroup.procs` for writing (close-on-exec): the child writes `0` to each
    /// before exec, so the function never runs outside its limits.
    pub fn open_procs(&self) -> io::Result<Vec<File>> {
        self.dirs
            .iter()
            .map(|d| {
                OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(d.join("cgroup.procs"))
            })
            .collect()
    }

    /// Processes now in the cgroup (pids in the worker's namespace).
    pub fn pids(&self) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .dirs
            .iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| {
                s.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// SIGKILLs everything inside (v2: `cgroup.kill` where the kernel has it).
    pub fn kill_all(&self) {
        if self.mode == CgroupMode::V2 {
            if let Some(d) = self.dirs.first() {
                let _ = fs::write(d.join("cgroup.kill"), "1");
            }
        }
        for pid in self.pids() {
            if pid > 0 {
                // SAFETY: plain kill(2) on a pid read from the cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// Removes the directories; `true` once none is left. Fails (EBUSY) while processes remain.
    pub fn remove(&self) -> bool {
        let mut gone = true;
        for d in &self.dirs {
            match fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => gone = false,
            }
        }
        gone
    }
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
