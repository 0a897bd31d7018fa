//! Finding what a command needs from the host: its program looked up in `PATH` (pyenv shims
//! resolved to the interpreter they stand for, as `pyenv` does for the global version), the
//! interpreter of a `#!` script, and the whole tree of a Python interpreter outside the system
//! directories (its prefix, where pip installs packages, or a virtual environment and its
//! base), so that a minimal root can bind exactly those read-only.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Host directories every sandbox sees read-only (when present), in this order.
pub(crate) const SYSTEM_DIRS: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
];

/// How deep `#!` interpreters and symlinked programs are followed.
const MAX_DEPTH: usize = 4;

/// Whether `p` lies in a system directory (so is visible anyway).
pub(crate) fn in_system_dirs(p: &Path) -> bool {
    SYSTEM_DIRS.iter().any(|d| p.starts_with(d))
}

/// A resolved program.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Program {
    /// The absolute path to execute.
    pub path: PathBuf,
    /// Host paths it needs, to bind read-only (program, interpreters, interpreter trees).
    pub binds: Vec<PathBuf>,
    /// Directories to put first in the sandbox's `PATH` (where its interpreter lives).
    pub path_dirs: Vec<PathBuf>,
}

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Looks `name` up in `path_var` (a `PATH` value).
pub(crate) fn resolve(name: &str, path_var: &str) -> Option<Program> {
    let mut out = Program::default();
    let found = lookup(name, path_var)?;
    follow(&found, path_var, &mut out, 0);
    out.path = found;
    Some(out)
}

/// Resolves a program given by path (absolute, or relative to `base`).
pub(crate) fn resolve_path(p: &Path, base: &Path, path_var: &str) -> Option<Program> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    if !executable(&abs) {
        return None;
    }
    let mut out = Program::default();
    follow(&abs, path_var, &mut out, 0);
    out.path = abs;
    Some(out)
}

fn lookup(name: &str, path_var: &str) -> Option<PathBuf> {
    for dir in path_var.split(':').filter(|d| d.starts_with('/')) {
        let cand = Path::new(dir).join(name);
        if !executable(&cand) {
            continue;
        }
        match pyenv_target(&cand, name) {
            Shim::Plain => return Some(cand),
            Shim::Version(real) => return Some(real),
            Shim::Unresolved => continue,
        }
    }
    None
}

enum Shim {
    Plain,
    Version(PathBuf),
    Unresolved,
}

/// A pyenv shim (`$PYENV_ROOT/shims/<name>`, a script that runs `pyenv exec`) stands for
/// `$PYENV_ROOT/versions/<v>/bin/<name>` of the selected version: `PYENV_VERSION`, else the
/// first line of `$PYENV_ROOT/version` that has the program ("system" and local
/// `.python-version` files are not consulted: the search then goes on along `PATH`).
fn pyenv_target(cand: &Path, name: &str) -> Shim {
    let Some(text) = head(cand, 1024) else {
        return Shim::Plain;
    };
    if !text.starts_with("#!") || !text.contains("libexec/pyenv\" exec") {
        return Shim::Plain;
    }
    let root = text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("export PYENV_ROOT=\"")
            .and_then(|r| r.strip_suffix('"'))
    });
    let Some(root) = root.map(PathBuf::from) else {
        return Shim::Unresolved;
    };
    let versions = match std::env::var("PYENV_VERSION") {
        Ok(v) => v,
        Err(_) => std::fs::read_to_string(root.join("version")).unwrap_or_default(),
    };
    versions
        .split(|c: char| c.is_whitespace() || c == ':')
        .filter(|v| !v.is_empty() && *v != "system")
        .map(|v| root.join("versions").join(v).join("bin").join(name))
        .find(|p| executable(p))
        .map_or(Shim::Unresolved, Shim::Version)
}

/// The first `n` bytes of a file as text (lossy), if it can be read.
fn head(p: &Path, n: u64) -> Option<String> {
    let mut buf = Vec::new();
    std::fs::File::open(p)
        .ok()?
        .take(n)
        .read_to_end(&mut buf)
        .ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn push(v: &mut Vec<PathBuf>, p: PathBuf) {
    if !in_system_dirs(&p) && !v.contains(&p) {
        v.push(p);
    }
}

/// Records what the program at `p` needs: itself, the real file behind its symlinks, a virtual
/// environment it belongs to, its Python prefix, and the interpreter of a `#!` script.
fn follow(p: &Path, path_var: &str, out: &mut Program, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    push(&mut out.binds, p.to_path_buf());
    let Ok(real) = std::fs::canonicalize(p) else {
        return;
    };
    push(&mut out.binds, real.clone());
    if let Some(dir) = p.parent().filter(|d| !in_system_dirs(d)) {
        push(&mut out.path_dirs, dir.to_path_buf());
    }
    if let Some(venv) = p.parent().and_then(Path::parent) {
        if let Ok(cfg) = std::fs::read_to_string(venv.join("pyvenv.cfg")) {
            push(&mut out.binds, venv.to_path_buf());
            let home = cfg.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "home").then(|| PathBuf::from(v.trim()))
            });
            if let Some(prefix) = home.as_deref().and_then(python_prefix_of_bin) {
                push(&mut out.binds, prefix);
            }
        }
    }
    if let Some(prefix) = real.parent().and_then(python_prefix_of_bin) {
        push(&mut out.binds, prefix);
    }
    let Some(text) = head(&real, 256) else {
        return;
    };
    let Some(line) = text.strip_prefix("#!").and_then(|t| t.lines().next()) else {
        return;
    };
    let mut words = line.split_whitespace();
    let Some(interp) = words.next() else { return };
    let interp = Path::new(interp);
    if interp.file_name().is_some_and(|n| n == "env") {
        let name = words.find(|w| !w.starts_with('-'));
        if let Some(found) = name.and_then(|n| lookup(n, path_var)) {
            follow(&found, path_var, out, depth + 1);
        }
    } else if interp.is_absolute() {
        follow(interp, path_var, out, depth + 1);
    }
}

/// The prefix of a Python installation whose `bin` directory is `bin`: the directory above it
/// when it holds `lib/python3.*/os.py` (Python's own landmark), and it is not a system dir.
fn python_prefix_of_bin(bin: &Path) -> Option<PathBuf> {
    let prefix = bin.parent()?;
    if in_system_dirs(prefix) || prefix == Path::new("/") {
        return None;
    }
    let lib = std::fs::read_dir(prefix.join("lib")).ok()?;
    let has_landmark = lib.filter_map(Result::ok).any(|e| {
        e.file_name().to_string_lossy().starts_with("python") && e.path().join("os.py").is_file()
    });
    has_landmark.then(|| prefix.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn exe(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// A fake Python installation under `prefix` with its landmark.
    fn python_tree(prefix: &Path) -> PathBuf {
        let bin = prefix.join("bin/python3");
        exe(&bin, "\x7fELF");
        fs::create_dir_all(prefix.join("lib/python3.11")).expect("mkdir");
        fs::write(prefix.join("lib/python3.11/os.py"), "").expect("landmark");
        bin
    }

    #[test]
    fn a_pyenv_shim_stands_for_the_global_version_and_its_prefix_is_bound() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("pyenv");
        let shim = root.join("shims/python3");
        exe(
            &shim,
            &format!(
                "#!/usr/bin/env bash\nexport PYENV_ROOT=\"{}\"\nexec \"{}/libexec/pyenv\" exec \"$program\" \"$@\"\n",
                root.display(),
                root.display()
            ),
        );
        fs::write(root.join("version"), "3.11.7\n").expect("version");
        let prefix = root.join("versions/3.11.7");
        let real = python_tree(&prefix);
        let path = format!("{}:/usr/bin", root.join("shims").display());
        let p = resolve("python3", &path).expect("resolved");
        assert_eq!(p.path, real);
        assert!(p.binds.contains(&prefix), "{:?}", p.binds);
        assert_eq!(p.path_dirs, vec![prefix.join("bin")]);
    }

    #[test]
    fn scripts_bring_their_interpreter_and_venvs_their_base() {
        let t = tempfile::tempdir().expect("tempdir");
        let base = t.path().join("base");
        let real = python_tree(&base);
        let venv = t.path().join("venv");
        fs::create_dir_all(venv.join("bin")).expect("mkdir");
        std::os::unix::fs::symlink(&real, venv.join("bin/python")).expect("symlink");
        fs::write(
            venv.join("pyvenv.cfg"),
            format!("home = {}\n", base.join("bin").display()),
        )
        .expect("cfg");
        let script = t.path().join("app/run");
        exe(
            &script,
            &format!("#!{}/bin/python -u\nprint(1)\n", venv.display()),
        );
        let p = resolve_path(Path::new("app/run"), t.path(), "/usr/bin").expect("resolved");
        assert_eq!(p.path, script);
        for want in [&script, &venv, &base] {
            assert!(p.binds.contains(want), "{want:?} in {:?}", p.binds);
        }
    }

    #[test]
    fn system_programs_need_nothing_and_missing_ones_are_none() {
        let p = resolve("sh", "/usr/bin:/bin").expect("sh");
        assert!(p.path.starts_with("/usr/bin") || p.path.starts_with("/bin"));
        assert!(p.binds.is_empty(), "{:?}", p.binds);
        assert!(resolve("no-such-program-here", "/usr/bin").is_none());
    }
}
