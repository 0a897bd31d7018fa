//! What a GPU sandbox on an image root needs from the host: the driver's user-space libraries,
//! its device nodes and the environment that finds them. Read from the host's CDI specs
//! (Container Device Interface: `/etc/cdi/*.yaml|json`, `/var/run/cdi/*`, vendor `nvidia.com`):
//! `containerEdits` of the spec and of every device — `deviceNodes`, `mounts` (libraries bound
//! into [`LIB_DIR`], programs into [`BIN_DIR`], sockets and directories under `/run` at their
//! own paths), `env`, and the hooks that can be honoured without running anything in the
//! read-only root (`create-symlinks` for libraries becomes symlinks in [`LIB_DIR`],
//! `update-ldcache` becomes `LD_LIBRARY_PATH`). Without a CDI spec: the NVIDIA libraries
//! `ldconfig -p` lists and the `/dev/nvidia*` nodes. The [`GpuPlan`] is turned into mounts by
//! `GpuPlan::mounts`: a small tmpfs at [`NVIDIA_DIR`] (a mount point every image root has),
//! holding the binds and links, made read-only.

use crate::plan::Mount;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where the driver's files appear inside an image root (what NVIDIA's CUDA images expect).
pub const NVIDIA_DIR: &str = "/usr/local/nvidia";
/// The driver's libraries inside an image root.
pub const LIB_DIR: &str = "/usr/local/nvidia/lib64";
/// The driver's programs (`nvidia-smi`…) inside an image root.
pub const BIN_DIR: &str = "/usr/local/nvidia/bin";
/// Where CDI specs are looked for, in this order.
pub const CDI_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

/// Name prefixes of the NVIDIA driver's user-space libraries taken from `ldconfig -p`.
const DRIVER_LIBS: [&str; 16] = [
    "libcuda.so",
    "libcudadebugger.so",
    "libnvidia-ml.so",
    "libnvidia-ptxjitcompiler.so",
    "libnvidia-nvvm.so",
    "libnvidia-opencl.so",
    "libnvidia-allocator.so",
    "libnvidia-cfg.so",
    "libnvidia-gpucomp.so",
    "libnvidia-pkcs11.so",
    "libnvidia-pkcs11-openssl3.so",
    "libnvidia-compiler.so",
    "libnvidia-encode.so",
    "libnvidia-opticalflow.so",
    "libnvcuvid.so",
    "libnvidia-fatbinaryloader.so",
];

/// Where the plan came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuSource {
    /// These CDI spec files.
    Cdi(Vec<PathBuf>),
    /// `ldconfig -p` and `/dev/nvidia*`.
    Ldconfig,
}

/// The host's GPU driver files for image roots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuPlan {
    /// Where it came from.
    pub source: GpuSource,
    /// Libraries: (host file, name in [`LIB_DIR`]).
    pub libs: Vec<(PathBuf, String)>,
    /// Programs: (host file, name in [`BIN_DIR`]).
    pub bins: Vec<(PathBuf, String)>,
    /// Symbolic links in [`LIB_DIR`]: (name, target).
    pub links: Vec<(String, String)>,
    /// Other host paths bound at their own path (under `/run` only: sockets of the driver's
    /// daemons), read-only.
    pub others: Vec<PathBuf>,
    /// Device nodes.
    pub devices: Vec<PathBuf>,
    /// Environment (CDI `env`), then `LD_LIBRARY_PATH` and `PATH` additions are the caller's.
    pub env: Vec<(String, String)>,
    /// What could not be honoured (hooks that run programs, mounts elsewhere), for the log.
    pub ignored: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CdiSpec {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    devices: Vec<CdiDevice>,
    #[serde(default)]
    container_edits: Option<Edits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CdiDevice {
    #[serde(default)]
    container_edits: Option<Edits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Edits {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    device_nodes: Vec<DeviceNode>,
    #[serde(default)]
    mounts: Vec<CdiMount>,
    #[serde(default)]
    hooks: Vec<Hook>,
}

#[derive(Debug, Deserialize)]
struct DeviceNode {
    path: PathBuf,
    #[serde(default, rename = "hostPath")]
    host_path: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CdiMount {
    host_path: PathBuf,
    container_path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Hook {
    #[serde(default)]
    hook_name: String,
    #[serde(default)]
    args: Vec<String>,
}

fn is_library(name: &str) -> bool {
    name.contains(".so")
}

fn file_name(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

impl GpuPlan {
    fn empty(source: GpuSource) -> GpuPlan {
        GpuPlan {
            source,
            libs: Vec::new(),
            bins: Vec::new(),
            links: Vec::new(),
            others: Vec::new(),
            devices: Vec::new(),
            env: Vec::new(),
            ignored: Vec::new(),
        }
    }

    /// The plan from the host: its NVIDIA CDI specs under `cdi_dirs` when there are any, else
    /// `ldconfig -p` and the `/dev/nvidia*` nodes.
    pub fn discover(cdi_dirs: &[PathBuf]) -> GpuPlan {
        let files = cdi_files(cdi_dirs);
        let mut specs = Vec::new();
        let mut used = Vec::new();
        for f in files {
            match std::fs::read_to_string(&f).map(|t| parse_cdi(&t)) {
                Ok(Ok(s)) if s.kind.starts_with("nvidia.com/") => {
                    specs.push(s);
                    used.push(f);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(file = %f.display(), "unreadable CDI spec: {e}"),
                Err(e) => tracing::warn!(file = %f.display(), "cannot read CDI spec: {e}"),
            }
        }
        if !specs.is_empty() {
            let mut plan = GpuPlan::from_cdi(used, &specs);
            plan.add_sonames();
            return plan;
        }
        let text = std::process::Command::new("ldconfig")
            .arg("-p")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut plan = GpuPlan::from_ldconfig(&text);
        plan.devices = crate::rootfs::gpu_devices();
        plan
    }

    /// The plan from parsed CDI specs (`files` only name them).
    fn from_cdi(files: Vec<PathBuf>, specs: &[CdiSpec]) -> GpuPlan {
        let mut plan = GpuPlan::empty(GpuSource::Cdi(files));
        let edits = specs.iter().flat_map(|s| {
            s.container_edits
                .iter()
                .chain(s.devices.iter().filter_map(|d| d.container_edits.as_ref()))
        });
        for e in edits {
            plan.add_edits(e);
        }
        plan.devices.sort();
        plan.devices.dedup();
        plan
    }

    fn add_edits(&mut self, e: &Edits) {
        for kv in &e.env {
            if let Some((k, v)) = kv.split_once('=') {
                if !self.env.iter().any(|(n, _)| n == k) {
                    self.env.push((k.to_string(), v.to_string()));
                }
            }
        }
        for d in &e.device_nodes {
            self.devices
                .push(d.host_path.clone().unwrap_or_else(|| d.path.clone()));
        }
        for m in &e.mounts {
            let Some(name) = file_name(&m.container_path) else {
                continue;
            };
            let c = m.container_path.to_string_lossy();
            if is_library(&name) && !c.contains("/firmware/") {
                push_unique(&mut self.libs, (m.host_path.clone(), name));
            } else if c.contains("/bin/") {
                push_unique(&mut self.bins, (m.host_path.clone(), name));
            } else if m.container_path.starts_with("/run") && m.container_path == m.host_path {
                if !self.others.contains(&m.host_path) {
                    self.others.push(m.host_path.clone());
                }
            } else {
                self.ignored.push(format!("mount {c}"));
            }
        }
        for h in &e.hooks {
            self.add_hook(h);
        }
    }

    fn add_hook(&mut self, h: &Hook) {
        let words: Vec<&str> = h.args.iter().map(String::as_str).collect();
        match words.iter().position(|w| *w == "hook") {
            Some(i) if words.get(i + 1) == Some(&"create-symlinks") => {
                let links = words[i + 2..]
                    .windows(2)
                    .filter(|w| w[0] == "--link")
                    .map(|w| w[1]);
                for spec in links {
                    let Some((target, link)) = spec.split_once("::") else {
                        continue;
                    };
                    let Some(name) = file_name(Path::new(link)) else {
                        continue;
                    };
                    if is_library(&name) {
                        let target = file_name(Path::new(target)).unwrap_or_default();
                        push_unique(&mut self.links, (name, target));
                    } else {
                        self.ignored.push(format!("symlink {link}"));
                    }
                }
            }
            // The loader cache of a read-only root cannot be updated: LD_LIBRARY_PATH instead.
            Some(i) if words.get(i + 1) == Some(&"update-ldcache") => {}
            _ => self
                .ignored
                .push(format!("{} hook {}", h.hook_name, h.args.join(" "))),
        }
    }

    /// Links from each library's `DT_SONAME` to its file (what `ldconfig` would make), where the
    /// plan has no file or link of that name.
    fn add_sonames(&mut self) {
        for (host, name) in &self.libs {
            let Some(so) = crate::elf::soname(host) else {
                continue;
            };
            let taken =
                self.libs.iter().any(|(_, n)| *n == so) || self.links.iter().any(|(n, _)| *n == so);
            if so != *name && !taken {
                self.links.push((so, name.clone()));
            }
        }
    }

    /// The plan from `ldconfig -p` output: every x86-64 NVIDIA driver library, by the name the
    /// loader knows it under (its file behind symlinks is bound).
    pub fn from_ldconfig(text: &str) -> GpuPlan {
        let mut plan = GpuPlan::empty(GpuSource::Ldconfig);
        for line in text.lines() {
            let Some((left, path)) = line.split_once("=>") else {
                continue;
            };
            let mut words = left.split_whitespace();
            let Some(name) = words.next() else { continue };
            let flags = words.collect::<Vec<_>>().join(" ");
            let x86_64 = flags.contains("x86-64");
            if x86_64 && DRIVER_LIBS.iter().any(|p| name.starts_with(p)) {
                push_unique(
                    &mut plan.libs,
                    (PathBuf::from(path.trim()), name.to_string()),
                );
            }
        }
        plan
    }

    /// Whether it binds nothing (no driver on this host).
    pub fn is_empty(&self) -> bool {
        self.libs.is_empty() && self.devices.is_empty()
    }

    /// The mounts that put the driver into an image root (after its own directories are bound,
    /// before `/` is made read-only), and the device nodes.
    pub(crate) fn mounts(&self) -> Vec<Mount> {
        let mut m = vec![Mount::Tmpfs {
            dst: NVIDIA_DIR.into(),
            size: 1 << 20,
            mode: 0o755,
        }];
        m.push(Mount::Dir {
            dst: LIB_DIR.into(),
        });
        m.push(Mount::Dir {
            dst: BIN_DIR.into(),
        });
        for (src, name) in &self.libs {
            m.push(Mount::RoBind {
                src: src.clone(),
                dst: Path::new(LIB_DIR).join(name),
            });
        }
        for (src, name) in &self.bins {
            m.push(Mount::RoBind {
                src: src.clone(),
                dst: Path::new(BIN_DIR).join(name),
            });
        }
        for (name, target) in &self.links {
            if !self.libs.iter().any(|(_, n)| n == name) {
                m.push(Mount::Symlink {
                    target: target.into(),
                    dst: Path::new(LIB_DIR).join(name),
                });
            }
        }
        m.push(Mount::RemountRo {
            dst: NVIDIA_DIR.into(),
        });
        for p in &self.others {
            m.push(Mount::RoBind {
                src: p.clone(),
                dst: p.clone(),
            });
        }
        for d in &self.devices {
            m.push(Mount::DevBind {
                src: d.clone(),
                dst: d.clone(),
            });
        }
        m
    }

    /// Host files the sandbox's user must be able to reach.
    pub(crate) fn host_files(&self) -> Vec<PathBuf> {
        self.libs
            .iter()
            .chain(&self.bins)
            .map(|(p, _)| p.clone())
            .chain(self.others.iter().cloned())
            .collect()
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// The CDI spec files under `dirs` (`*.yaml`, `*.yml`, `*.json`), sorted within each directory.
fn cdi_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            })
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

fn parse_cdi(text: &str) -> Result<CdiSpec, String> {
    // JSON is YAML too.
    serde_norway::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
#[path = "gpu_tests.rs"]
mod tests;
