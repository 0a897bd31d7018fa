//! Bad input never panics: layers and archives with random bytes flipped are refused with an error
//! or unpacked, and whatever happens, nothing appears beside the root.

mod common;

use common::Layer;
use proptest::prelude::*;
use sluice_image::spec::Compression;
use sluice_image::unpack::Unpacker;
use sluice_image::ImageStore;

fn sample() -> Vec<u8> {
    Layer::new()
        .dir("a", 0o755)
        .file("a/f", b"content", 0o644)
        .symlink("a/l", "../b")
        .hardlink("a/h", "a/f")
        .whiteout("a/gone")
        .opaque("b")
        .file("b/x", &[9u8; 700], 0o600)
        .tar()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    #[test]
    fn mutated_layers_never_panic_or_escape(
        flips in prop::collection::vec((0usize..8192, any::<u8>()), 1..12),
        gzip in any::<bool>(),
    ) {
        let mut blob = sample();
        if gzip {
            blob = common::gzip(&blob);
        }
        for (at, byte) in flips {
            let len = blob.len();
            blob[at % len] = byte;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let compression = if gzip { Compression::Gzip } else { Compression::None };
        let _ = Unpacker::new(&root).and_then(|mut u| {
            u.apply_layer(&blob[..], compression, None, "fuzz")?;
            u.finish()
        });
        let beside: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert_eq!(beside, vec![std::ffi::OsString::from("root")]);
    }

    #[test]
    fn mutated_archives_never_panic(flips in prop::collection::vec((0usize..8192, any::<u8>()), 1..8)) {
        let manifest = br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l/layer.tar"]}]"#;
        let layer = sample();
        let config = common::layout::config(&[common::diff_id(&layer)], serde_json::json!({}));
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [("manifest.json", &manifest[..]), ("c.json", &config[..]), ("l/layer.tar", &layer[..])] {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        let mut archive = b.into_inner().unwrap();
        for (at, byte) in flips {
            let len = archive.len();
            archive[at % len] = byte;
        }
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(tmp.path().join("store")).unwrap();
        if let Ok(image) = store.import_archive_stream(&mut &archive[..], None) {
            let _ = store.root_for(&image);
        }
    }
}
