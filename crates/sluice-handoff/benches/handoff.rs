//! Hand-off latency of one payload from a producer to a consumer thread, for 64 KiB to 64 MiB:
//!
//! - `in_place`: the producer writes the payload into a fresh tmpfs segment (`write_segment`: create,
//!   size, write) and sends its name over a Unix socket; the consumer maps the segment and checksums every
//!   byte, answers the checksum; the producer then deletes the segment (the worker's release).
//! - `socket_copy`: the producer sends the payload over a Unix stream socket; the consumer reads all of
//!   it into its (reused) buffer and checksums every byte, answers the checksum.
//!
//! Both consumers do the same work (one checksum pass) and both hand-offs cost one round trip on a
//! socket. After the runs, a table of the medians and their ratio is printed from criterion's
//! estimates. Run: `cargo bench -p sluice-handoff --bench handoff`; segments go to `/dev/shm` unless
//! `SLUICE_BENCH_SHM_ROOT` names another tmpfs (one mounted with `huge=within_size`, say).

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use sluice_handoff::shm::{open_segment, write_segment};
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

/// Consumer of `in_place`: gets a segment name (length-prefixed), maps it, checksums it.
fn shm_consumer(mut conn: UnixStream, dir: PathBuf) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while let Some(len) = read_u64(&mut conn) {
            let mut name = vec![0u8; len as usize];
            conn.read_exact(&mut name).expect("segment name");
            let name = String::from_utf8(name).expect("utf-8 name");
            let segment = open_segment(&dir, &name).expect("map segment");
            let sum = checksum(&segment);
            drop(segment);
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

fn in_place(conn: &mut UnixStream, dir: &Path, seq: &mut u64, payload: &[u8]) -> u64 {
    let name = format!("seg-{seq}");
    *seq += 1;
    write_segment(dir, &name, payload).expect("write segment");
    conn.write_all(&(name.len() as u64).to_le_bytes())
        .expect("send");
    conn.write_all(name.as_bytes()).expect("send");
    let sum = read_u64(conn).expect("checksum");
    std::fs::remove_file(dir.join(&name)).expect("delete segment");
    sum
}

fn socket_copy(conn: &mut UnixStream, payload: &[u8]) -> u64 {
    conn.write_all(&(payload.len() as u64).to_le_bytes())
        .expect("send");
    conn.write_all(payload).expect("send");
    read_u64(conn).expect("checksum")
}

fn bench(c: &mut Criterion, shm_dir: &Path) {
    let largest = SIZES.iter().map(|s| s.0).max().unwrap_or(0);
    let payload: Vec<u8> = (0..largest)
        .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes()[7])
        .collect();
    let (mut shm_conn, shm_peer) = UnixStream::pair().expect("socket pair");
    let (mut copy_conn, copy_peer) = UnixStream::pair().expect("socket pair");
    let shm_thread = shm_consumer(shm_peer, shm_dir.to_path_buf());
    let copy_thread = copy_consumer(copy_peer, largest);
    let mut seq = 0u64;
    let mut group = c.benchmark_group(GROUP);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (size, label) in SIZES {
        let bytes = &payload[..size];
        let expected = checksum(bytes);
        assert_eq!(in_place(&mut shm_conn, shm_dir, &mut seq, bytes), expected);
        assert_eq!(socket_copy(&mut copy_conn, bytes), expected);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("in_place", label), bytes, |b, bytes| {
            b.iter(|| in_place(&mut shm_conn, shm_dir, &mut seq, bytes))
        });
        group.bench_with_input(BenchmarkId::new("socket_copy", label), bytes, |b, bytes| {
            b.iter(|| socket_copy(&mut copy_conn, bytes))
        });
    }
    group.finish();
    drop((shm_conn, copy_conn));
    shm_thread.join().expect("shm consumer");
    copy_thread.join().expect("copy consumer");
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
    println!("\n| size | in place (median) | socket copy (median) | socket / in place |");
    println!("|---|---|---|---|");
    for (_, label) in SIZES {
        let (Some(shm), Some(copy)) = (
            median_ns(&dir, "in_place", label),
            median_ns(&dir, "socket_copy", label),
        ) else {
            println!("| {label} | (no estimate in {}) | | |", dir.display());
            continue;
        };
        println!(
            "| {label} | {:.1} µs | {:.1} µs | {:.2}× |",
            shm / 1e3,
            copy / 1e3,
            copy / shm
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
