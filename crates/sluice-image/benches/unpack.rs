//! Unpack throughput on a synthetic layer (500 files of 16 KiB in 25 directories, plus symlinks and
//! a whiteout layer on top), uncompressed and gzip: `cargo bench -p sluice-image`. Roots are kept
//! until the benchmark ends: deleting them between iterations would measure ext4's slow inode
//! allocation next to recently deleted inodes instead.
//! The end-to-end figure on a real Debian image is `scripts/debian-image.sh`.
// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_image::digest::Digest;
use sluice_image::spec::Compression;
use sluice_image::unpack::Unpacker;
use std::io::Write;
use std::time::{Duration, Instant};

fn entry(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    link: Option<&str>,
    data: &[u8],
) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    if let Some(link) = link {
        header.set_link_name(link).expect("link name");
    }
    header.set_path(path).expect("path");
    header.set_cksum();
    builder.append(&header, data).expect("append");
}

fn layers() -> (Vec<u8>, Vec<u8>) {
    let mut base = tar::Builder::new(Vec::new());
    let data: Vec<u8> = (0..16 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    for d in 0..25 {
        entry(
            &mut base,
            &format!("usr/share/d{d}"),
            tar::EntryType::Directory,
            None,
            b"",
        );
        for f in 0..20 {
            entry(
                &mut base,
                &format!("usr/share/d{d}/f{f}"),
                tar::EntryType::Regular,
                None,
                &data,
            );
        }
        entry(
            &mut base,
            &format!("usr/share/l{d}"),
            tar::EntryType::Symlink,
            Some("d0/f0"),
            b"",
        );
    }
    let mut top = tar::Builder::new(Vec::new());
    entry(
        &mut top,
        "usr/share/d1/.wh..wh..opq",
        tar::EntryType::Regular,
        None,
        b"",
    );
    entry(
        &mut top,
        "usr/share/.wh.d2",
        tar::EntryType::Regular,
        None,
        b"",
    );
    (
        base.into_inner().expect("tar"),
        top.into_inner().expect("tar"),
    )
}

/// Times `iters` unpacks, each into a new root kept until the benchmark ends.
fn unpack(
    iters: u64,
    layers: &[(&[u8], Compression, &Digest)],
    keep: &mut Vec<tempfile::TempDir>,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = tempfile::tempdir().expect("tempdir");
        let start = Instant::now();
        let mut unpacker = Unpacker::new(dir.path()).expect("unpacker");
        for (blob, compression, diff_id) in layers {
            unpacker
                .apply_layer(*blob, *compression, Some(diff_id), "bench")
                .expect("apply");
        }
        unpacker.finish().expect("finish");
        total += start.elapsed();
        keep.push(dir);
    }
    total
}

fn bench(c: &mut Criterion) {
    let (base, top) = layers();
    let (base_id, top_id) = (Digest::of(&base), Digest::of(&top));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&base).expect("gzip");
    let base_gz = gz.finish().expect("gzip");
    let mut group = c.benchmark_group("unpack");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(base.len() as u64));
    let mut keep = Vec::new();
    let plain = [
        (&base[..], Compression::None, &base_id),
        (&top[..], Compression::None, &top_id),
    ];
    group.bench_function("tar", |b| {
        b.iter_custom(|iters| unpack(iters, &plain, &mut keep))
    });
    let gzipped = [
        (&base_gz[..], Compression::Gzip, &base_id),
        (&top[..], Compression::None, &top_id),
    ];
    group.bench_function("tar+gzip", |b| {
        b.iter_custom(|iters| unpack(iters, &gzipped, &mut keep))
    });
    group.finish();
    drop(keep);
}

criterion_group!(benches, bench);
criterion_main!(benches);
