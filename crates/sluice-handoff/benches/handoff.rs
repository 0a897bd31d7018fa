//! Hand-off latency of one payload from a producer to a consumer thread, for 64 KiB to 64 MiB:
//!
//! - `in_place`: the steady state of a running pipeline. The producer takes a segment name from a
//!   [`ShmArena`] (which recycles the file of a segment released earlier), writes the payload into
//!   it through its [`MappingCache`] (overwrite, truncate to length), retains it for one consumer
//!   and sends its name over a Unix socket; the consumer reads the segment in place through its own
//!   `MappingCache` and checksums every byte, answers the checksum; the producer then releases the
//!   segment (the consumer's release), which pools its file for the next hand-off.
//! - `in_place_remap`: the same with recycled files but no mapping kept: the producer `write`s
//!   (`ShmArena::write`) and the consumer maps and unmaps (`open_segment`) at every hand-off.
//! - `in_place_cold`: as `in_place_remap` through an arena without a pool ([`PoolLimits::NONE`]):
//!   every hand-off creates a fresh file (the kernel allocates and zeroes its pages) and deletes it.
//! - `socket_copy`: the producer sends the payload over a Unix stream socket; the consumer reads all of
//!   it into its (reused) buffer and checksums every byte, answers the checksum.
//!
//! All consumers do the same work (one checksum pass) and every hand-off costs one round trip on a
//! socket. After the runs, a table of the medians and their ratios is printed from criterion's
//! estimates. Run: `cargo bench -p sluice-handoff --bench handoff`; segments go to `/dev/shm` unless
//! `SLUICE_BENCH_SHM_ROOT` names another tmpfs (one mounted with `huge=within_size`, say).

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use sluice_handoff::shm::{open_segment, MappingCache, PoolLimits, ShmArena};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

const SIZES: [(usize, &str); 4] = [
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
    (16 << 20, "16MiB"),
    (64 << 20, "64MiB"),
];
const GROUP: &str = "handoff";

/// The consumer's work on the payload: reads every byte.
fn checksum(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let sum = words.by_ref().fold(0u64, |acc, w| {
        acc.wrapping_add(u64::from_le_bytes(w.try_into().expect("8-byte chunk")))
    });
    words
        .remainder()
        .iter()
        .fold(sum, |acc, &b| acc.wrapping_add(u64::from(b)))
}

fn read_u64(conn: &mut UnixStream) -> Option<u64> {
    let mut word = [0u8; 8];
    conn.read_exact(&mut word).ok()?;
    Some(u64::from_le_bytes(word))
}

/// Consumer of the in-place hand-offs: gets a segment name (length-prefixed), reads the segment in
/// place — through its [`MappingCache`] when it has one, else a fresh mapping — and checksums it.
fn shm_consumer(
    mut conn: UnixStream,
    dir: PathBuf,
    mut cache: Option<MappingCache>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while let Some(len) = read_u64(&mut conn) {
            let mut name = vec![0u8; len as usize];
            conn.read_exact(&mut name).expect("segment name");
            let name = String::from_utf8(name).expect("utf-8 name");
            let sum = match cache.as_mut() {
                Some(cache) => checksum(cache.read(&dir, &name).expect("map segment")),
                None => checksum(&open_segment(&dir, &name).expect("map segment")),
            };
            conn.write_all(&sum.to_le_bytes()).expect("answer");
        }
    })
}

/// Consumer of `socket_copy`: reads the length-prefixed payload into its buffer, checksums it.
fn copy_consumer(mut conn: UnixStream, capacity: usize) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; capacity];
        while let Some(len) = read_u64(&mut conn) {
            let bytes = &mut buffer[..len as usize];
            conn.read_exact(bytes).expect("payload");
            let sum = checksum(bytes);
            conn.write_all(&sum.to_le_bytes()).expect("answer");
        }
    })
}

/// One in-place hand-off: `cache` is the producer's (`None`: `ShmArena::write`, a fresh `write`).
fn in_place(
    conn: &mut UnixStream,
    arena: &ShmArena,
    cache: Option<&mut MappingCache>,
    payload: &[u8],
) -> u64 {
    let name = arena.allocate("bench");
    match cache {
        Some(cache) => cache.write(arena.dir(), &name, payload),
        None => arena.write(&name, payload),
    }
    .expect("write segment");
    arena.retain(&name, 1).expect("retain segment");
    conn.write_all(&(name.len() as u64).to_le_bytes())
        .expect("send");
    conn.write_all(name.as_bytes()).expect("send");
    let sum = read_u64(conn).expect("checksum");
    arena.release(&name).expect("release segment");
    sum
}

fn socket_copy(conn: &mut UnixStream, payload: &[u8]) -> u64 {
    conn.write_all(&(payload.len() as u64).to_le_bytes())
        .expect("send");
    conn.write_all(payload).expect("send");
    read_u64(conn).expect("checksum")
}

fn bench(c: &mut Criterion, shm_root: &Path) {
    let largest = SIZES.iter().map(|s| s.0).max().unwrap_or(0);
    let payload: Vec<u8> = (0..largest)
        .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes()[7])
        .collect();
    let mapped = ShmArena::create(shm_root, "bench-mapped").expect("arena");
    let remapped = ShmArena::create(shm_root, "bench-remapped").expect("arena");
    let cold = ShmArena::with_pool(shm_root, "bench-cold", PoolLimits::NONE).expect("arena");
    let mut producer_cache = MappingCache::new(MappingCache::DEFAULT_BYTES);
    let (mut mapped_conn, mapped_peer) = UnixStream::pair().expect("socket pair");
    let (mut remapped_conn, remapped_peer) = UnixStream::pair().expect("socket pair");
    let (mut cold_conn, cold_peer) = UnixStream::pair().expect("socket pair");
    let (mut copy_conn, copy_peer) = UnixStream::pair().expect("socket pair");
    let consumers = [
        shm_consumer(
            mapped_peer,
            mapped.dir().to_path_buf(),
            Some(MappingCache::new(MappingCache::DEFAULT_BYTES)),
        ),
        shm_consumer(remapped_peer, remapped.dir().to_path_buf(), None),
        shm_consumer(cold_peer, cold.dir().to_path_buf(), None),
        copy_consumer(copy_peer, largest),
    ];
    let mut group = c.benchmark_group(GROUP);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (size, label) in SIZES {
        let bytes = &payload[..size];
        let expected = checksum(bytes);
        let mapped_once = in_place(&mut mapped_conn, &mapped, Some(&mut producer_cache), bytes);
        assert_eq!(mapped_once, expected);
        assert_eq!(
            in_place(&mut remapped_conn, &remapped, None, bytes),
            expected
        );
        assert_eq!(in_place(&mut cold_conn, &cold, None, bytes), expected);
        assert_eq!(socket_copy(&mut copy_conn, bytes), expected);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("in_place", label), bytes, |b, bytes| {
            b.iter(|| in_place(&mut mapped_conn, &mapped, Some(&mut producer_cache), bytes))
        });
        group.bench_with_input(
            BenchmarkId::new("in_place_remap", label),
            bytes,
            |b, bytes| b.iter(|| in_place(&mut remapped_conn, &remapped, None, bytes)),
        );
        group.bench_with_input(
            BenchmarkId::new("in_place_cold", label),
            bytes,
            |b, bytes| b.iter(|| in_place(&mut cold_conn, &cold, None, bytes)),
        );
        group.bench_with_input(BenchmarkId::new("socket_copy", label), bytes, |b, bytes| {
            b.iter(|| socket_copy(&mut copy_conn, bytes))
        });
    }
    group.finish();
    drop((mapped_conn, remapped_conn, cold_conn, copy_conn));
    for consumer in consumers {
        consumer.join().expect("consumer thread");
    }
}

/// Where criterion writes its estimates (its own rule: `CRITERION_HOME`, else the target directory).
fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    // target/<profile>/deps/<bench binary>
    let exe = std::env::current_exe().ok()?;
    Some(exe.ancestors().nth(3)?.join("criterion"))
}

fn median_ns(dir: &Path, function: &str, label: &str) -> Option<f64> {
    let path = dir
        .join(GROUP)
        .join(function)
        .join(label)
        .join("new/estimates.json");
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn print_summary() {
    let Some(dir) = criterion_dir() else {
        return;
    };
    const FUNCTIONS: [&str; 4] = ["in_place", "in_place_remap", "in_place_cold", "socket_copy"];
    println!(
        "\n| size | in place (recycled, kept mappings) | in place (recycled, fresh mappings) | \
         in place (cold: fresh file) | socket copy | socket / in place | socket / cold |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (_, label) in SIZES {
        let medians: Option<Vec<f64>> = FUNCTIONS
            .iter()
            .map(|function| median_ns(&dir, function, label))
            .collect();
        let Some([warm, remap, cold, copy]) = medians.as_deref() else {
            println!("| {label} | (no estimate in {}) | | | | | |", dir.display());
            continue;
        };
        println!(
            "| {label} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.2}× | {:.2}× |",
            warm / 1e3,
            remap / 1e3,
            cold / 1e3,
            copy / 1e3,
            copy / warm,
            copy / cold
        );
    }
}

fn main() {
    let shm_root = match std::env::var_os("SLUICE_BENCH_SHM_ROOT") {
        Some(root) => PathBuf::from(root),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    println!("segments in {}", shm_root.display());
    let shm_dir = tempfile::Builder::new()
        .prefix("sluice-bench-")
        .tempdir_in(shm_root)
        .expect("bench directory");
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, shm_dir.path());
    criterion.final_summary();
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        print_summary();
    }
}
