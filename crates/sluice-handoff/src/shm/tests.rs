//! Shared-memory tests: data integrity, reference counts, cleanup (drop, purge, sweep).

use super::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use std::fs;
use std::os::unix::fs::MetadataExt;
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

/// The files of an arena's pool (`<root>/<pid>.pool/<group>`).
fn pool_files(root: &Path, group: &str) -> Vec<String> {
    files_in(
        &root
            .join(format!("{}.pool", std::process::id()))
            .join(group),
    )
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
    // Every non-empty file was pooled and the next allocation took it over: one file is left.
    let usage = arena.usage();
    assert_eq!((usage.segments, usage.retained, usage.pooled), (0, 0, 1));
    assert_eq!(usage.pooled_bytes, 3 * (1 << 20) + 17);
    assert!(files_in(arena.dir()).is_empty());
    assert_eq!(pool_files(root.path(), "integrity").len(), 1);
}

#[test]
fn a_smaller_payload_in_a_recycled_file_leaves_no_stale_tail() {
    let root = tempfile::tempdir().unwrap();
    let arena = ShmArena::create(root.path(), "tail").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut previous_inode = None;
    for size in [1 << 20, 4096 * 3 + 5, 100, 0, 70_000, 70_000, 1] {
        let bytes: Vec<u8> = (0..size).map(|_| rng.random()).collect();
        let name = arena.allocate("inv");
        let recycled = arena.dir().join(&name).exists();
        assert_eq!(recycled, previous_inode.is_some(), "size {size}");
        arena.write(&name, &bytes).unwrap();
        let inode = fs::metadata(arena.dir().join(&name)).unwrap().ino();
        if let Some(previous) = previous_inode {
            assert_eq!(inode, previous, "the pooled file was not reused");
        }
        assert_eq!(arena.retain(&name, 1).unwrap(), size as u64);
        let segment = arena.open(&name).unwrap();
        assert!(*segment == bytes[..], "size {size}: stale or wrong bytes");
        drop(segment);
        assert!(arena.release(&name).unwrap());
        // An empty file is not worth pooling: it is deleted and the next output starts afresh.
        previous_inode = (size > 0).then_some(inode);
    }
}

#[test]
fn create_segment_overwrites_a_recycled_file_to_its_new_length() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), "s", &[9u8; 10_000]).unwrap();
    let mut seg = create_segment(dir.path(), "s", 8).unwrap();
    seg.copy_from_slice(b"in place");
    seg.finish().unwrap();
    assert_eq!(&*open_segment(dir.path(), "s").unwrap(), b"in place");
    let mut seg = create_segment(dir.path(), "s", 5000).unwrap();
    seg.fill(3);
    seg.finish().unwrap();
    assert!(open_segment(dir.path(), "s")
        .unwrap()
        .iter()
        .all(|&b| b == 3));
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
fn refcount_deletes_exactly_at_zero_without_a_pool() {
    let root = tempfile::tempdir().unwrap();
    let arena = ShmArena::with_pool(root.path(), "rc", PoolLimits::NONE).unwrap();
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
fn the_last_release_pools_the_file_and_the_next_allocation_renames_it() {
    let root = tempfile::tempdir().unwrap();
    let arena = ShmArena::create(root.path(), "rc").unwrap();
    let name = arena.allocate("inv-1");
    arena.write(&name, &[7u8; 100]).unwrap();
    assert_eq!(arena.retain(&name, 2).unwrap(), 100);
    assert!(!arena.release(&name).unwrap());
    assert!(arena.release(&name).unwrap());
    let usage = arena.usage();
    assert_eq!(
        (usage.segments, usage.pooled, usage.pooled_bytes),
        (0, 1, 100)
    );
    // Out of the stages' sight: the old name finds nothing, and a late release of it is refused.
    assert!(files_in(arena.dir()).is_empty());
    assert_eq!(pool_files(root.path(), "rc"), vec![name.clone()]);
    assert!(matches!(arena.release(&name), Err(ShmError::Unknown(_))));
    let next = arena.allocate("inv-2");
    assert_ne!(next, name);
    assert_eq!(files_in(arena.dir()), vec![next.clone()]);
    assert!(pool_files(root.path(), "rc").is_empty());
    assert_eq!(arena.usage().pooled, 0);
    // The producer has not written the recycled file yet: it holds the earlier item's bytes, which
    // must not be handed over.
    assert!(matches!(
        arena.retain(&next, 1),
        Err(ShmError::NotWritten(_))
    ));
    arena.write(&next, b"fresh").unwrap();
    assert_eq!(arena.retain(&next, 1).unwrap(), 5);
    assert_eq!(&*arena.open(&next).unwrap(), b"fresh");
}

#[test]
fn the_pool_stays_within_its_bounds_and_evicts_the_oldest() {
    let root = tempfile::tempdir().unwrap();
    let limits = PoolLimits {
        max_bytes: 10_000,
        max_segments: 3,
    };
    let arena = ShmArena::with_pool(root.path(), "bound", limits).unwrap();
    // Five live segments at once, released in order: the pool keeps what fits, newest last.
    let sizes = [4000u64, 3000, 2000, 1000, 20_000];
    let names: Vec<String> = sizes
        .iter()
        .map(|&size| {
            let name = arena.allocate("inv");
            arena.write(&name, &vec![1u8; size as usize]).unwrap();
            arena.retain(&name, 1).unwrap();
            name
        })
        .collect();
    let mut pooled: Vec<(String, u64)> = Vec::new();
    for (i, (name, &size)) in names.iter().zip(&sizes).enumerate() {
        arena.release(name).unwrap();
        if size <= limits.max_bytes {
            pooled.push((name.clone(), size));
        }
        while pooled.len() > limits.max_segments
            || pooled.iter().map(|p| p.1).sum::<u64>() > limits.max_bytes
        {
            pooled.remove(0);
        }
        let usage = arena.usage();
        assert!(usage.pooled <= limits.max_segments);
        assert!(usage.pooled_bytes <= limits.max_bytes);
        assert_eq!(usage.pooled, pooled.len());
        assert_eq!(usage.pooled_bytes, pooled.iter().map(|p| p.1).sum::<u64>());
        let mut expected: Vec<String> = pooled.iter().map(|p| p.0.clone()).collect();
        expected.sort();
        assert_eq!(
            pool_files(root.path(), "bound"),
            expected,
            "after releasing {name}"
        );
        let mut live = names[i + 1..].to_vec();
        live.sort();
        assert_eq!(files_in(arena.dir()), live);
    }
    // Most recently pooled first: the 1000-byte file (the 20 000-byte one was too big to pool).
    let next = arena.allocate("inv");
    assert_eq!(fs::metadata(arena.dir().join(&next)).unwrap().len(), 1000);
}

#[test]
fn retain_with_no_consumer_releases_and_missing_output_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let arena = ShmArena::with_pool(root.path(), "zero", PoolLimits::NONE).unwrap();
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
fn discard_and_purge_delete_recycled_files_too() {
    let root = tempfile::tempdir().unwrap();
    let arena = ShmArena::create(root.path(), "del").unwrap();
    for _ in 0..3 {
        let name = arena.allocate("inv");
        arena.write(&name, &[5u8; 5000]).unwrap();
        arena.retain(&name, 0).unwrap();
    }
    // Three outputs one after the other recycled one file.
    assert_eq!(arena.usage().pooled, 1);
    let discarded = arena.allocate("a");
    arena.write(&discarded, b"failed producer").unwrap();
    arena.discard(&discarded).unwrap();
    assert!(files_in(arena.dir()).is_empty());
    let second = arena.allocate("b");
    arena.write(&second, &[1u8; 300]).unwrap();
    arena.retain(&second, 0).unwrap();
    let purged = arena.allocate("b");
    assert!(arena.dir().join(&purged).exists(), "recycled");
    assert_eq!(arena.purge("b").unwrap(), 1);
    assert!(files_in(arena.dir()).is_empty());
    assert_eq!(arena.usage(), ShmUsage::default());
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
    let pooled = arena.allocate("inv");
    arena.write(&pooled, b"recycled").unwrap();
    arena.retain(&pooled, 0).unwrap();
    assert_eq!(arena.usage().pooled, 1);
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
    let dead_pool = root.path().join(format!("{dead_pid}.pool"));
    fs::create_dir_all(dead_pool.join("ocr")).unwrap();
    fs::write(dead_pool.join("ocr/seg-1"), b"pooled").unwrap();
    fs::create_dir(root.path().join("not-a-worker")).unwrap();
    let ours = ShmArena::create(root.path(), "mine").unwrap();
    let mut removed = sweep(root.path()).unwrap();
    removed.sort();
    running.kill().unwrap();
    running.wait().unwrap();
    assert_eq!(removed, vec![dead.clone(), dead_pool.clone()]);
    let our_pools = root.path().join(format!("{}.pool", std::process::id()));
    assert!(our_pools.exists());
    assert!(!dead.exists());
    assert!(live.exists() && ours.dir().exists());
    assert!(root.path().join("not-a-worker").exists());
    // Once that worker is gone too, the next sweep takes its directory.
    assert_eq!(sweep(root.path()).unwrap(), vec![live.clone()]);
    assert!(sweep(&root.path().join("missing")).unwrap().is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    /// Allocate for an owner; write a payload of that many bytes (`None`: the producer failed to).
    Allocate(u8, Option<u16>),
    Retain(usize, u32),
    Release(usize),
    Discard(usize),
    Purge(u8),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, proptest::option::weighted(0.75, 0u16..9000))
            .prop_map(|(owner, size)| Op::Allocate(owner, size)),
        2 => (0usize..16, 0u32..3).prop_map(|(i, n)| Op::Retain(i, n)),
        3 => (0usize..16).prop_map(Op::Release),
        1 => (0usize..16).prop_map(Op::Discard),
        1 => (0u8..3).prop_map(Op::Purge),
    ]
}

/// The bytes of the `k`-th allocation: distinct from every other allocation's.
fn payload(k: usize, size: u16) -> Vec<u8> {
    (0..usize::from(size))
        .map(|i| (k as u8).wrapping_mul(31).wrapping_add((i / 7) as u8) ^ (k >> 8) as u8)
        .collect()
}

/// The model's view of one tracked segment.
#[derive(Debug)]
struct Tracked {
    owner: u8,
    /// Consumers; `None` while only allocated.
    consumers: Option<u32>,
    /// What its producer wrote (`None`: nothing).
    bytes: Option<Vec<u8>>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Against a model of references, with a small pool so that files are recycled and evicted all
    /// the time: every tracked segment's file holds exactly what its producer wrote (so no file is
    /// handed out again while an item refers to it, and no recycled file shows an earlier item's
    /// bytes); a recycled file nobody rewrote is never handed over; references never go negative;
    /// usage matches the model; the pool stays in its bounds; the directory holds exactly the
    /// tracked written files and the pooled ones; drop leaves nothing.
    #[test]
    fn arena_matches_its_model(ops in proptest::collection::vec(arb_op(), 1..60)) {
        use std::collections::HashMap;
        let limits = PoolLimits { max_bytes: 16_000, max_segments: 3 };
        let root = tempfile::tempdir().unwrap();
        let arena = ShmArena::with_pool(root.path(), "model", limits).unwrap();
        let dir = arena.dir().to_path_buf();
        let mut model: HashMap<String, Tracked> = HashMap::new();
        let mut names: Vec<String> = Vec::new();
        for op in ops {
            match op {
                Op::Allocate(owner, size) => {
                    let pooled_before = arena.usage().pooled;
                    let name = arena.allocate(&owner.to_string());
                    prop_assert!(!model.contains_key(&name), "{} handed out twice", name);
                    prop_assert_eq!(dir.join(&name).exists(), pooled_before > 0);
                    let bytes = size.map(|size| payload(names.len(), size));
                    if let Some(bytes) = &bytes {
                        arena.write(&name, bytes).unwrap();
                    }
                    model.insert(name.clone(), Tracked { owner, consumers: None, bytes });
                    names.push(name);
                }
                Op::Retain(i, n) => {
                    let Some(name) = names.get(i) else { continue };
                    let got = arena.retain(name, n);
                    match model.get_mut(name) {
                        None => prop_assert!(matches!(got, Err(ShmError::Unknown(_)))),
                        Some(Tracked { bytes: None, .. }) => prop_assert!(got.is_err(), "{:?}", got),
                        Some(entry) => {
                            let written = entry.bytes.as_ref().map_or(0, Vec::len) as u64;
                            prop_assert_eq!(got.unwrap(), written);
                            if entry.consumers.is_none() && n == 0 {
                                model.remove(name);
                            } else {
                                entry.consumers = Some(entry.consumers.unwrap_or(0) + n);
                            }
                        }
                    }
                }
                Op::Release(i) => {
                    let Some(name) = names.get(i) else { continue };
                    let got = arena.release(name);
                    match model.get_mut(name) {
                        Some(Tracked { consumers: Some(n), .. }) => {
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
                    let tracked = model.remove(name).is_some();
                    prop_assert_eq!(arena.discard(name).is_ok(), tracked);
                    if tracked {
                        prop_assert!(!dir.join(name).exists());
                    }
                }
                Op::Purge(owner) => {
                    let before = model.len();
                    model.retain(|_, e| e.owner != owner);
                    prop_assert_eq!(arena.purge(&owner.to_string()).unwrap(), before - model.len());
                }
            }
            for (name, entry) in &model {
                if let Some(bytes) = &entry.bytes {
                    let on_disk = fs::read(dir.join(name)).unwrap();
                    prop_assert!(&on_disk == bytes, "{} does not hold its producer's bytes", name);
                }
            }
            let usage = arena.usage();
            prop_assert_eq!(usage.segments, model.len());
            let retained: Vec<_> = model.values().filter(|e| e.consumers.is_some()).collect();
            prop_assert_eq!(usage.retained, retained.len());
            prop_assert_eq!(
                usage.bytes,
                retained.iter().map(|e| e.bytes.as_ref().map_or(0, Vec::len) as u64).sum::<u64>()
            );
            prop_assert!(usage.pooled <= limits.max_segments);
            prop_assert!(usage.pooled_bytes <= limits.max_bytes);
            // The group's directory holds tracked segments only; the pool what usage says.
            let files = files_in(&dir);
            prop_assert!(files.iter().all(|f| model.contains_key(f)), "{:?}", files);
            for (name, entry) in &model {
                if entry.bytes.is_some() {
                    prop_assert!(files.contains(name));
                }
            }
            let pool_dir = root.path().join(format!("{}.pool", std::process::id())).join("model");
            let pooled = files_in(&pool_dir);
            prop_assert_eq!(pooled.len(), usage.pooled);
            let pooled_bytes: u64 =
                pooled.iter().map(|f| fs::metadata(pool_dir.join(f)).unwrap().len()).sum();
            prop_assert_eq!(pooled_bytes, usage.pooled_bytes);
        }
        drop(arena);
        prop_assert!(files_in(root.path()).is_empty());
    }
}

#[test]
fn kept_mappings_follow_recycled_files_and_never_show_stale_bytes() {
    let root = tempfile::tempdir().unwrap();
    let arena = ShmArena::create(root.path(), "cache").unwrap();
    let mut producer = MappingCache::new(MappingCache::DEFAULT_BYTES);
    let mut consumer = MappingCache::new(MappingCache::DEFAULT_BYTES);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for size in [200_000usize, 200_000, 5000, 0, 300_000, 17, 4096] {
        let bytes: Vec<u8> = (0..size).map(|_| rng.random()).collect();
        let name = arena.allocate("inv");
        producer.write(arena.dir(), &name, &bytes).unwrap();
        assert_eq!(arena.retain(&name, 1).unwrap(), size as u64);
        assert!(
            consumer.read(arena.dir(), &name).unwrap() == &bytes[..],
            "size {size}"
        );
        assert!(arena.release(&name).unwrap());
    }
    // One recycled file, mapped once per side (re-mapped only when it grew).
    assert_eq!(arena.usage().pooled, 1);
    assert!(consumer.mapped_bytes() <= 300_000 && producer.mapped_bytes() <= 300_000);
}

#[test]
fn a_name_that_denotes_another_file_never_reaches_an_old_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = MappingCache::new(1 << 20);
    write_segment(dir.path(), "s", b"first file").unwrap();
    assert_eq!(cache.read(dir.path(), "s").unwrap(), b"first file");
    fs::remove_file(dir.path().join("s")).unwrap();
    write_segment(dir.path(), "s", b"second one").unwrap();
    assert_eq!(cache.read(dir.path(), "s").unwrap(), b"second one");
    // The deleted file's mapping went when the new one was made.
    assert_eq!(cache.mapped_bytes(), 10);
    assert!(matches!(
        cache.read(dir.path(), "missing"),
        Err(ShmError::Io { op: "open", .. })
    ));
    assert!(matches!(
        cache.write(dir.path(), "../x", b"x"),
        Err(ShmError::BadName { .. })
    ));
}

#[derive(Debug, Clone)]
enum CacheOp {
    /// Write a payload of that size to file `0..3`, through the cache or not.
    Write(usize, u16, bool),
    /// Move file `a` over file `b` (the pool renaming a recycled file).
    Rename(usize, usize),
    Delete(usize),
    Read(usize),
}

fn arb_cache_op() -> impl Strategy<Value = CacheOp> {
    prop_oneof![
        3 => (0usize..3, 0u16..12_000, any::<bool>()).prop_map(|(f, n, c)| CacheOp::Write(f, n, c)),
        1 => (0usize..3, 0usize..3).prop_map(|(a, b)| CacheOp::Rename(a, b)),
        1 => (0usize..3).prop_map(CacheOp::Delete),
        3 => (0usize..3).prop_map(CacheOp::Read),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever happens to the files (overwritten longer or shorter, by the cache or by plain
    /// writes, renamed over each other, deleted), a read through the cache gives exactly the bytes
    /// last written to that name, and the cache stays within its bound (one oversized mapping aside).
    #[test]
    fn mapping_cache_reads_what_was_last_written(ops in proptest::collection::vec(arb_cache_op(), 1..50)) {
        use std::collections::HashMap;
        let dir = tempfile::tempdir().unwrap();
        let bound = 16_000u64;
        let mut writer = MappingCache::new(bound);
        let mut reader = MappingCache::new(bound);
        let mut model: HashMap<usize, Vec<u8>> = HashMap::new();
        let name = |f: usize| format!("f{f}");
        for (k, op) in ops.into_iter().enumerate() {
            match op {
                CacheOp::Write(f, size, through_cache) => {
                    let bytes = payload(k, size);
                    if through_cache {
                        writer.write(dir.path(), &name(f), &bytes).unwrap();
                    } else {
                        write_segment(dir.path(), &name(f), &bytes).unwrap();
                    }
                    model.insert(f, bytes);
                }
                CacheOp::Rename(a, b) => {
                    if a != b {
                        if let Some(bytes) = model.remove(&a) {
                            fs::rename(dir.path().join(name(a)), dir.path().join(name(b))).unwrap();
                            model.insert(b, bytes);
                        }
                    }
                }
                CacheOp::Delete(f) => {
                    if model.remove(&f).is_some() {
                        fs::remove_file(dir.path().join(name(f))).unwrap();
                    }
                }
                CacheOp::Read(f) => match (model.get(&f), reader.read(dir.path(), &name(f))) {
                    (Some(want), Ok(got)) => prop_assert!(got == &want[..], "f{} differs", f),
                    (None, got) => prop_assert!(got.is_err()),
                    (Some(_), Err(e)) => prop_assert!(false, "{}", e),
                },
            }
            prop_assert!(writer.mapped_bytes() <= bound);
            prop_assert!(reader.mapped_bytes() <= bound);
        }
    }
}
