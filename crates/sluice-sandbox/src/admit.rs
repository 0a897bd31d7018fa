//! Which host paths a function may have bound into its sandbox, and where: [`Context::admit`]
//! canonicalises a path the function names and refuses it when it is hidden (the launcher's data,
//! the configuration, other sandboxes), one of `/`, `/root`, `/home` as a whole, inside `/proc`,
//! `/sys` or `/dev`, or — for a root launcher — out of reach of the sandbox's user; [`Binds`]
//! collects what was admitted into ordered read-only mounts (parents first, nothing twice), with
//! the directories a path passes through before a `..`.

use crate::plan::Mount;
use crate::resolve::in_system_dirs;
use crate::users::reachable;
use std::path::{Path, PathBuf};

/// What the plan depends on besides the spec.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    /// The sandbox's socket directory on the host.
    pub socket_dir: &'a Path,
    /// Canonical host paths never bound (data directory, configuration, other sandboxes).
    pub hidden: &'a [PathBuf],
    /// The sandbox's host uid/gid when it differs from the launcher's (reachability checks).
    pub user: Option<(u32, u32)>,
    /// The launcher's `PATH`, where programs named without a `/` are found.
    pub path_var: &'a str,
}

/// Host paths that are never bound, whatever the function names.
const NEVER: [&str; 3] = ["/proc", "/sys", "/dev"];
const NEVER_WHOLE: [&str; 3] = ["/", "/root", "/home"];

impl Context<'_> {
    /// The canonical host path of `p` (with its last component kept when it is a symlink, so
    /// it appears where it was named) if the function may have it bound; `Err` says why not.
    pub(crate) fn admit(&self, p: &Path, base: &Path) -> Result<(PathBuf, PathBuf), String> {
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        };
        let unavailable = || format!("{} does not exist or is not accessible", abs.display());
        let src = std::fs::canonicalize(&abs).map_err(|_| unavailable())?;
        let dst = match (abs.parent(), abs.file_name()) {
            (Some(parent), Some(name)) => std::fs::canonicalize(parent)
                .map_err(|_| unavailable())?
                .join(name),
            _ => src.clone(),
        };
        for q in [&src, &dst] {
            let hidden = self
                .hidden
                .iter()
                .any(|h| q.starts_with(h) || h.starts_with(q));
            let never = NEVER.iter().any(|n| q.starts_with(n))
                || NEVER_WHOLE.iter().any(|n| q == Path::new(n));
            if hidden || never {
                return Err(format!("{} may not be given to a sandbox", q.display()));
            }
            if let Some((uid, gid)) = self.user {
                if !reachable(q, uid, gid) {
                    return Err(unavailable());
                }
            }
        }
        Ok((src, dst))
    }
}

/// The directories a path passes through before each `..` (canonical), which must exist inside
/// for the path to resolve there as it does on the host.
pub(crate) fn dot_dot_dirs(p: &Path) -> Vec<PathBuf> {
    let mut lexical = PathBuf::from("/");
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                if let Ok(real) = std::fs::canonicalize(&lexical) {
                    out.push(real);
                }
                lexical.pop();
            }
            std::path::Component::Normal(n) => lexical.push(n),
            _ => {}
        }
    }
    out
}

/// Binds collected for the function, keyed by where they appear inside.
#[derive(Default)]
pub(crate) struct Binds(Vec<(PathBuf, PathBuf)>);

impl Binds {
    pub(crate) fn add(&mut self, (src, dst): (PathBuf, PathBuf)) {
        if !in_system_dirs(&dst) && !self.0.iter().any(|(_, d)| d == &dst) {
            self.0.push((src, dst));
        }
    }

    /// Sorted parents first, without those inside a directory already bound; then the
    /// directories `passed` (see [`dot_dot_dirs`]) that no bind provides.
    pub(crate) fn into_mounts(mut self, passed: &[PathBuf]) -> Vec<Mount> {
        self.0.sort_by(|a, b| a.1.cmp(&b.1));
        let mut kept: Vec<(PathBuf, PathBuf)> = Vec::new();
        for (src, dst) in self.0 {
            if !kept.iter().any(|(_, d)| dst.starts_with(d)) {
                kept.push((src, dst));
            }
        }
        let mut dirs: Vec<&PathBuf> = passed
            .iter()
            .filter(|d| {
                !in_system_dirs(d) && !kept.iter().any(|(_, k)| d.starts_with(k) || k == *d)
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        let dirs: Vec<Mount> = dirs
            .into_iter()
            .map(|d| Mount::Dir { dst: d.clone() })
            .collect();
        kept.into_iter()
            .map(|(src, dst)| Mount::RoBind { src, dst })
            .chain(dirs)
            .collect()
    }
}
