//! Imports an image into a store, unpacks its root, and prints the timings as JSON; then
//! re-registers it (import + root again) to show that the second time does no unpack.
//!
//! ```text
//! cargo run --release -p sluice-image --example import -- <store dir> <source> [ref]
//! ```

use sluice_image::{ImageSource, ImageStore};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(store_dir), Some(source)) = (args.first(), args.get(1)) else {
        eprintln!("usage: import <store dir> <oci-layout:DIR | docker-archive:FILE> [ref]");
        std::process::exit(2);
    };
    let reference = args.get(2).map(String::as_str);
    let source: ImageSource = source.parse()?;
    let store = ImageStore::open(store_dir)?;
    let start = Instant::now();
    let image = store.import(&source, reference)?;
    let imported = start.elapsed();
    let root = store.ensure_root(&image)?;
    let total = start.elapsed();
    let again = Instant::now();
    let image2 = store.import(&source, reference)?;
    let root2 = store.ensure_root(&image2)?;
    let reregister = again.elapsed();
    let report = serde_json::json!({
        "image": image.digest.to_string(),
        "blob_bytes": image.size,
        "layers": image.layers.len(),
        "import_s": imported.as_secs_f64(),
        "unpack_s": (total - imported).as_secs_f64(),
        "import_and_unpack_s": total.as_secs_f64(),
        "unpack": root.unpacked,
        "root": root.path,
        "reregister_s": reregister.as_secs_f64(),
        "reregister_unpacked": root2.unpacked.is_some(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
