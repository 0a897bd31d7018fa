//! Shared-memory tests: data integrity, reference counts, cleanup (drop, purge, sweep).

use super::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use std::fs;
use std::path::Path;
use std::process::Command;

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn segments_keep_random_payloads_intact() {
    let root = tempfile::tempdir().unwrap();
    let arena = ShmArena::create(root.path(), "integrity").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for size in [
        0usize,
        1,
        4095,
        4096,
        4097,
        65_536,
        1 << 20,
        3 * (1 << 20) + 17,
    ] {
        let bytes: Vec<u8> = (0..size).map(|_| rng.random()).collect();
        let name = arena.allocate("inv");
        arena.write(&name, &bytes).unwrap();
        let segment = arena.open(&name).unwrap();
        assert_eq!(segment.len(), size);
        assert!(*segment == bytes[..], "size {size}");
        assert_eq!(arena.retain(&name, 1).unwrap(), size as u64);
        assert!(arena.release(&name).unwrap());
    }
    assert_eq!(arena.usage(), ShmUsage::default());
    assert!(files_in(arena.dir()).is_empty());
}

#[test]
fn in_place_writes_are_seen_by_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let mut seg = create_segment(dir.path(), "s", 8).unwrap();
    seg.copy_from_slice(b"in place");
    seg.finish().unwrap();
    assert_eq!(&*open_segment(dir.path(), "s").unwrap(), b"in place");
}

#[test]
fn segment_names_cannot_escape_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["../x", "..", "", "a/b"] {
        assert!(matches!(
            write_segment(dir.path(), name, b"x"),
            Err(ShmError::BadName { .. })
        ));
        assert!(matches!(
            open_segment(dir.path(), name),
            Err(ShmError::BadName { .. })
        ));
    }
    assert!(matches!(
        ShmArena::create(dir.path(), "../g"),
        Err(ShmError::BadName { .. })
    ));
}

#[test]
fn refcount_deletes_exactly_at_zero() {
    let root = tempfile::tempdir().unwrap();
    let arena = ShmArena::create(root.path(), "rc").unwrap();
    let name = arena.allocate("inv-1");
    arena.write(&name, &[7u8; 100]).unwrap();
    assert!(matches!(
        arena.release(&name),
        Err(ShmError::NotRetained(_))
    ));
    assert_eq!(arena.retain(&name, 2).unwrap(), 100);
    assert_eq!(arena.retain(&name, 1).unwrap(), 100);
    let usage = arena.usage();
    assert_eq!((usage.segments, usage.retained, usage.bytes), (1, 1, 100));
    let path = arena.dir().join(&name);
    assert!(!arena.release(&name).unwrap());
    assert!(!arena.release(&name).unwrap());
    assert!(path.exists(), "deleted before its last consumer");
    assert!(arena.release(&name).unwrap());
    assert!(!path.exists(), "not deleted at zero");
    assert!(matches!(arena.release(&name), Err(ShmError::Unknown(_))));
    assert_eq!(arena.usage(), ShmUsage::default());
}

#[test]
fn retain_with_no_consumer_deletes_and_missing_output_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let arena = ShmArena::create(root.path(), "zero").unwrap();
    let name = arena.allocate("inv");
    arena.write(&name, b"abc").unwrap();
    assert_eq!(arena.retain(&name, 0).unwrap(), 3);
    assert!(files_in(arena.dir()).is_empty());
    let never_written = arena.allocate("inv");
    assert!(matches!(
        arena.retain(&never_written, 1),
        Err(ShmError::Io { op: "stat", .. })
    ));
    arena.discard(&never_written).unwrap();
    assert!(matches!(
        arena.discard(&never_written),
        Err(ShmError::Unknown(_))
    ));
}

#[test]
fn purge_removes_a_dead_producers_segments_only() {
    let root = tempfile::tempdir().unwrap();
    let arena = ShmArena::create(root.path(), "purge").unwrap();
    let keep = arena.allocate("alive");
    arena.write(&keep, b"kept").unwrap();
    arena.retain(&keep, 1).unwrap();
    // The dead invocation: one output handed over, one written but never answered, one never written.
    let handed = arena.allocate("dead");
    arena.write(&handed, b"x").unwrap();
    arena.retain(&handed, 3).unwrap();
    let written = arena.allocate("dead");
    arena.write(&written, b"yy").unwrap();
    let _unwritten = arena.allocate("dead");
    assert_eq!(arena.purge("dead").unwrap(), 3);
    assert_eq!(files_in(arena.dir()), vec![keep.clone()]);
    let usage = arena.usage();
    assert_eq!((usage.segments, usage.bytes), (1, 4));
    assert_eq!(arena.purge("dead").unwrap(), 0);
}

#[test]
fn drop_removes_the_whole_directory() {
    let root = tempfile::tempdir().unwrap();
    let arena = ShmArena::create(root.path(), "drop").unwrap();
    let dir = arena.dir().to_path_buf();
    assert_eq!(
        dir.file_name().unwrap().to_str().unwrap(),
        format!("{}-drop", std::process::id())
    );
    for _ in 0..3 {
        let name = arena.allocate("inv");
        arena.write(&name, b"left behind").unwrap();
    }
    fs::write(dir.join("stray"), b"a stage's own file").unwrap();
    drop(arena);
    assert!(!dir.exists());
    assert!(files_in(root.path()).is_empty());
}

#[test]
fn one_arena_per_group_and_leftovers_of_our_pid_are_replaced() {
    let root = tempfile::tempdir().unwrap();
    let leftover = root.path().join(format!("{}-g", std::process::id()));
    fs::create_dir(&leftover).unwrap();
    fs::write(leftover.join("seg-0"), b"from a previous life").unwrap();
    let arena = ShmArena::create(root.path(), "g").unwrap();
    assert!(files_in(arena.dir()).is_empty());
    assert!(ShmArena::create(root.path(), "g").is_err());
    drop(arena);
    assert!(ShmArena::create(root.path(), "g").is_ok());
}

#[test]
fn sweep_removes_dead_workers_dirs_only() {
    let root = tempfile::tempdir().unwrap();
    let mut exited = Command::new("true").spawn().unwrap();
    let dead_pid = exited.id();
    exited.wait().unwrap();
    let mut running = Command::new("sleep").arg("30").spawn().unwrap();
    let dead = root.path().join(format!("{dead_pid}-ocr"));
    let live = root.path().join(format!("{}-ocr", running.id()));
    for dir in [&dead, &live] {
        fs::create_dir(dir).unwrap();
        fs::write(dir.join("seg-0"), b"payload").unwrap();
    }
    fs::create_dir(root.path().join("not-a-worker")).unwrap();
    let ours = ShmArena::create(root.path(), "mine").unwrap();
    let removed = sweep(root.path()).unwrap();
    running.kill().unwrap();
    running.wait().unwrap();
    assert_eq!(removed, vec![dead.clone()]);
    assert!(!dead.exists());
    assert!(live.exists() && ours.dir().exists());
    assert!(root.path().join("not-a-worker").exists());
    // Once that worker is gone too, the next sweep takes its directory.
    assert_eq!(sweep(root.path()).unwrap(), vec![live.clone()]);
    assert!(sweep(&root.path().join("missing")).unwrap().is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(u8),
    Retain(usize, u32),
    Release(usize),
    Discard(usize),
    Purge(u8),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3).prop_map(Op::Allocate),
        (0usize..16, 0u32..3).prop_map(|(i, n)| Op::Retain(i, n)),
        (0usize..16).prop_map(Op::Release),
        (0usize..16).prop_map(Op::Discard),
        (0u8..3).prop_map(Op::Purge),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against a model: a file exists exactly while its segment is tracked and written; references
    /// never go negative; usage matches the model; drop leaves nothing.
    #[test]
    fn arena_matches_its_model(ops in proptest::collection::vec(arb_op(), 1..40)) {
        use std::collections::HashMap;
        let root = tempfile::tempdir().unwrap();
        let arena = ShmArena::create(root.path(), "model").unwrap();
        let dir = arena.dir().to_path_buf();
        // name -> (owner, consumers (None: allocated only), size)
        let mut model: HashMap<String, (u8, Option<u32>, u64)> = HashMap::new();
        let mut names: Vec<String> = Vec::new();
        for op in ops {
            match op {
                Op::Allocate(owner) => {
                    let name = arena.allocate(&owner.to_string());
                    let size = names.len() as u64 * 3;
                    arena.write(&name, &vec![owner; size as usize]).unwrap();
                    model.insert(name.clone(), (owner, None, size));
                    names.push(name);
                }
                Op::Retain(i, n) => {
                    let Some(name) = names.get(i) else { continue };
                    let got = arena.retain(name, n);
                    match model.get_mut(name) {
                        None => prop_assert!(got.is_err()),
                        Some(entry) => {
                            prop_assert_eq!(got.unwrap(), entry.2);
                            let now = entry.1.unwrap_or(0) + n;
                            if entry.1.is_none() && n == 0 {
                                model.remove(name);
                            } else {
                                entry.1 = Some(now);
                            }
                        }
                    }
                }
                Op::Release(i) => {
                    let Some(name) = names.get(i) else { continue };
                    let got = arena.release(name);
                    match model.get_mut(name) {
                        Some((_, Some(n), _)) => {
                            *n -= 1;
                            let last = *n == 0;
                            prop_assert_eq!(got.unwrap(), last);
                            if last {
                                model.remove(name);
                            }
                        }
                        _ => prop_assert!(got.is_err()),
                    }
                }
                Op::Discard(i) => {
                    let Some(name) = names.get(i) else { continue };
                    prop_assert_eq!(arena.discard(name).is_ok(), model.remove(name).is_some());
                }
                Op::Purge(owner) => {
                    let before = model.len();
                    model.retain(|_, e| e.0 != owner);
                    prop_assert_eq!(arena.purge(&owner.to_string()).unwrap(), before - model.len());
                }
            }
            for name in &names {
                prop_assert_eq!(dir.join(name).exists(), model.contains_key(name), "{}", name);
            }
            let usage = arena.usage();
            prop_assert_eq!(usage.segments, model.len());
            let retained: Vec<_> = model.values().filter(|e| e.1.is_some()).collect();
            prop_assert_eq!(usage.retained, retained.len());
            prop_assert_eq!(usage.bytes, retained.iter().map(|e| e.2).sum::<u64>());
        }
        drop(arena);
        prop_assert!(!dir.exists());
    }
}
