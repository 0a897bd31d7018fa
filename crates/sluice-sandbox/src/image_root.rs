//! The plan of a sandbox whose root is an unpacked container image ([`Root::Image`](crate::Root::Image)): the same
//! tmpfs root both isolations build, holding every top-level entry of the image read-only
//! (directories and files bound, symlinks recreated, so `/lib -> usr/lib` stays a link), and
//! fresh `/dev`, `/proc`, a size-limited `/tmp` and `/run` with the socket directory at
//! [`SOCKET_DIR`] — never the image's own. Nothing of the host is visible but what the caller
//! chose: its read-only and read-write paths under [`HOST_DIR`] (environment values of the
//! caller that name them are rewritten to match), and for GPU sandboxes the device nodes, `/sys`
//! read-only and the driver's libraries (`gpu`). The function runs as the image's user inside
//! its user namespace; the image root is a path the launcher reveals to the sandbox's user.
//! The function's environment is the caller's whole environment for it (the image's `Env` with
//! the spec's over it): it names paths inside the image, so it is never scanned for host paths.

use crate::admit::Context;
use crate::gpu::{GpuPlan, LIB_DIR};
use crate::plan::{Mount, Plan};
use crate::rootfs::{DEFAULT_PATH, SLIRP_RESOLV, SOCKET_DIR};
use crate::spec::{ImageRoot, SandboxSpec};
use crate::SandboxError;
use std::path::{Path, PathBuf};

/// Where the caller's host paths (`read_only`, `read_write`) appear in an image root:
/// `<HOST_DIR><host path>`.
pub const HOST_DIR: &str = "/run/host";

/// Top-level entries of an image that the sandbox replaces with its own.
const OWN: [&str; 5] = ["dev", "proc", "sys", "tmp", "run"];

fn bad(msg: impl Into<String>) -> SandboxError {
    SandboxError::BadSpec(msg.into())
}

/// Where host path `p` appears inside an image root.
pub(crate) fn inside(p: &Path) -> PathBuf {
    Path::new(HOST_DIR).join(p.strip_prefix("/").unwrap_or(p))
}

/// `value` with every `:`-separated part that names one of `paths` (or lies under one) moved
/// under [`HOST_DIR`].
fn rewrite(value: &str, paths: &[PathBuf]) -> String {
    value
        .split(':')
        .map(|part| {
            let p = Path::new(part);
            if p.is_absolute() && paths.iter().any(|h| p.starts_with(h)) {
                inside(p).display().to_string()
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// The image's top-level entries as mounts, sorted by name.
fn image_mounts(root: &Path) -> Result<Vec<Mount>, SandboxError> {
    let entries =
        std::fs::read_dir(root).map_err(|e| bad(format!("image root {}: {e}", root.display())))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !OWN.contains(&n.as_str()))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let src = root.join(&name);
        let dst = Path::new("/").join(&name);
        let Ok(meta) = std::fs::symlink_metadata(&src) else {
            continue;
        };
        let t = meta.file_type();
        if t.is_symlink() {
            if let Ok(target) = std::fs::read_link(&src) {
                out.push(Mount::Symlink { target, dst });
            }
        } else if t.is_dir() || t.is_file() {
            out.push(Mount::RoBind { src, dst });
        }
    }
    Ok(out)
}

/// The environment inside: the function's, `PATH` defaulted, the caller's with its host paths
/// moved, the GPU's, and the socket.
fn environment(
    spec: &SandboxSpec,
    host_paths: &[PathBuf],
    gpu: Option<&GpuPlan>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: &str, v: String| {
        env.retain(|(n, _)| n != k);
        env.push((k.to_string(), v));
    };
    set(&mut env, "PATH", DEFAULT_PATH.to_string());
    set(&mut env, "HOME", "/tmp".to_string());
    for (k, v) in &spec.env {
        set(&mut env, k, v.clone());
    }
    for (k, v) in &spec.extra_env {
        set(&mut env, k, rewrite(v, host_paths));
    }
    if let Some(g) = gpu {
        for (k, v) in &g.env {
            set(&mut env, k, v.clone());
        }
        let ld = env
            .iter()
            .find(|(k, _)| k == "LD_LIBRARY_PATH")
            .map(|(_, v)| format!("{v}:{LIB_DIR}"))
            .unwrap_or_else(|| LIB_DIR.to_string());
        set(&mut env, "LD_LIBRARY_PATH", ld);
    }
    set(
        &mut env,
        "SLUICE_SOCKET",
        format!("{SOCKET_DIR}/{}", crate::SOCKET_NAME),
    );
    env
}

/// The plan of an isolated sandbox on `image` for `spec`; `gpu` is the host's driver plan for a
/// GPU sandbox.
pub(crate) fn plan(
    spec: &SandboxSpec,
    image: &ImageRoot,
    cx: &Context<'_>,
    gpu: Option<&GpuPlan>,
) -> Result<Plan, SandboxError> {
    if !spec.files.is_empty() {
        return Err(bad(
            "files: a function from an image sees only its image (put the files into it)",
        ));
    }
    let root = std::fs::canonicalize(&image.path)
        .map_err(|e| bad(format!("image root {}: {e}", image.path.display())))?;
    if !root.is_dir() {
        return Err(bad(format!(
            "image root {} is not a directory",
            root.display()
        )));
    }
    let chdir = spec.workdir.clone().unwrap_or_else(|| PathBuf::from("/"));
    if !chdir.is_absolute() {
        return Err(bad(format!(
            "workdir {} must be absolute inside the image",
            chdir.display()
        )));
    }
    if spec.command.first().is_none_or(|p| p.is_empty()) {
        return Err(bad("command names no program"));
    }
    let mut trusted = vec![root.clone(), cx.socket_dir.to_path_buf()];
    let mut mounts = image_mounts(&root)?;
    mounts.push(Mount::Dev { dst: "/dev".into() });
    mounts.push(Mount::Proc {
        dst: "/proc".into(),
    });
    mounts.push(Mount::Tmpfs {
        dst: "/tmp".into(),
        size: spec.limits.tmp_bytes,
        mode: 0o1777,
    });
    mounts.push(Mount::Bind {
        src: cx.socket_dir.to_path_buf(),
        dst: SOCKET_DIR.into(),
    });
    if spec.network {
        mounts.push(Mount::File {
            dst: "/etc/resolv.conf".into(),
            data: SLIRP_RESOLV.to_string(),
        });
    }
    let mut host_paths = Vec::new();
    for (p, writable) in spec
        .read_only
        .iter()
        .map(|p| (p, false))
        .chain(spec.read_write.iter().map(|p| (p, true)))
    {
        let what = if writable { "read-write" } else { "read-only" };
        let src = std::fs::canonicalize(p)
            .map_err(|e| bad(format!("{what} path {}: {e}", p.display())))?;
        let dst = inside(p);
        trusted.push(src.clone());
        host_paths.push(p.clone());
        mounts.push(if writable {
            Mount::Bind { src, dst }
        } else {
            Mount::RoBind { src, dst }
        });
    }
    if spec.gpu {
        let g = gpu.ok_or_else(|| bad("gpu: no GPU plan"))?;
        if !root.join("usr/local/nvidia").is_dir()
            || std::fs::symlink_metadata(root.join("usr/local"))
                .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(bad(
                "gpu: the image root has no plain /usr/local/nvidia mount point (unpacked by an \
                 older sluice? delete its root to unpack it again)",
            ));
        }
        mounts.push(Mount::RoBind {
            src: "/sys".into(),
            dst: "/sys".into(),
        });
        mounts.extend(g.mounts());
        trusted.extend(g.host_files());
    }
    mounts.push(Mount::RemountRo { dst: "/".into() });
    Ok(Plan {
        mounts,
        chdir,
        command: spec.command.clone(),
        env: environment(spec, &host_paths, gpu.filter(|_| spec.gpu)),
        trusted,
        user: Some(image.user),
    })
}

#[cfg(test)]
#[path = "image_root_tests.rs"]
mod tests;
