//! Sandbox directories left by a launcher that was killed: a directory `w<pid>-<id>` under the
//! sandbox root belongs to launcher process `pid`; while that process lives it is spared,
//! otherwise it is removed at the next start (anything else there is a leftover too).

use std::path::Path;

/// Removes the stale directories under `root`; returns how many went.
pub(crate) fn sandbox_dirs(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| !crate::cgroup::owner_alive(&e.file_name().to_string_lossy()))
        .filter(|e| {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&p).is_ok()
            } else {
                std::fs::remove_file(&p).is_ok()
            }
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_launchers_directories_go_and_a_live_ones_stay() {
        let t = tempfile::tempdir().expect("tempdir");
        let live = t.path().join(crate::cgroup::name(7));
        let dead = t.path().join("w4294967295-7");
        let old_style = t.path().join("cpu-12");
        for d in [&live, &dead, &old_style] {
            std::fs::create_dir_all(d.join("run")).expect("mkdir");
        }
        std::fs::write(dead.join("run/sluice.sock"), "").expect("file");
        assert_eq!(sandbox_dirs(t.path()), 2);
        assert!(live.exists() && !dead.exists() && !old_style.exists());
    }
}
