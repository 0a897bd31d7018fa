//! A sandbox's processes found without a cgroup: the leader's descendants, read from `/proc`,
//! each with its start time so that a pid reused later is never taken for one of them (nor
//! signalled). Without a cgroup (a worker that is not root, or no writable controller) this is
//! how teardown kills everything the function started, also what left the leader's session
//! (bubblewrap's `--new-session`), and waits until it is gone: a function inside a PID
//! namespace dies with the namespace's init, asynchronously, and the init's exit completes only
//! once the kernel has reaped every other process of the namespace.

use std::collections::{BTreeMap, BTreeSet};

/// One process: its pid and its start time (clock ticks after boot, `/proc/<pid>/stat` field 22).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pid: u32,
    start: u64,
}

/// What `/proc/<pid>/stat` says of a process: state, parent and start time.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Stat {
    state: char,
    ppid: u32,
    start: u64,
}

/// Parses the text of `/proc/<pid>/stat`. The command name is in parentheses and may itself
/// hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (field 3), ppid (4), … starttime (22).
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The live descendants of `root` (not `root` itself), parents before children.
pub(crate) fn descendants(root: u32) -> Vec<Member> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: BTreeMap<u32, Vec<Member>> = BTreeMap::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(s) = stat(pid) {
            children.entry(s.ppid).or_default().push(Member {
                pid,
                start: s.start,
            });
        }
    }
    from_tree(root, &children)
}

/// The descendants of `root` in a parent → children table, parents before children.
fn from_tree(root: u32, children: &BTreeMap<u32, Vec<Member>>) -> Vec<Member> {
    let mut out = Vec::new();
    // A cycle cannot happen in a real table; a malformed one must not loop forever. A set, not a
    // scan of `out`: a function without a pids limit may have started thousands of processes.
    let mut seen = BTreeSet::from([root]);
    let mut next = vec![root];
    while let Some(p) = next.pop() {
        for m in children.get(&p).into_iter().flatten() {
            if seen.insert(m.pid) {
                out.push(*m);
                next.push(m.pid);
            }
        }
    }
    out
}

impl Member {
    /// Whether this process has ended: no longer listed, a zombie, or its pid now belongs to a
    /// process started at another time.
    pub(crate) fn gone(&self) -> bool {
        stat(self.pid).is_none_or(|s| s.start != self.start || matches!(s.state, 'Z' | 'X' | 'x'))
    }

    /// SIGKILL, unless its pid now belongs to another process.
    pub(crate) fn kill(&self) {
        if self.gone() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.pid) {
            // SAFETY: kill(2) takes no pointers; the pid was checked to still be this process
            // just above (a reuse in between would need the pid space to wrap in microseconds).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_parses_whatever_the_command_name_holds() {
        let line =
            "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                ppid: 17,
                start: 987654
            })
        );
        assert_eq!(parse_stat("4242 (truncated) S 17"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
        assert_eq!(
            parse_stat("1 (x) S notanumber 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5"),
            None
        );
    }

    #[test]
    fn descendants_are_found_through_every_generation_and_cycles_end() {
        let m = |pid| Member { pid, start: 1 };
        let mut t: BTreeMap<u32, Vec<Member>> = BTreeMap::new();
        t.insert(10, vec![m(11), m(12)]);
        t.insert(12, vec![m(13)]);
        t.insert(13, vec![m(10)]); // a malformed table's cycle back to the root
        t.insert(99, vec![m(100)]);
        let mut got: Vec<u32> = from_tree(10, &t).iter().map(|x| x.pid).collect();
        got.sort_unstable();
        assert_eq!(got, vec![11, 12, 13]);
        assert!(from_tree(50, &t).is_empty());
    }

    #[test]
    fn a_real_child_is_a_descendant_until_it_is_reaped_or_a_zombie() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let me = std::process::id();
        let found: Vec<Member> = descendants(me)
            .into_iter()
            .filter(|m| m.pid == child.id())
            .collect();
        assert_eq!(found.len(), 1, "the child is listed");
        assert!(!found[0].gone());
        found[0].kill();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !found[0].gone() {
            assert!(std::time::Instant::now() < deadline, "SIGKILL ends it");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = child.wait();
        assert!(found[0].gone(), "reaped");
        let other = Member {
            pid: me,
            start: u64::MAX,
        };
        assert!(
            other.gone(),
            "a pid with another start time is not this member"
        );
    }
}
