//! A real distribution: a Debian root made by `debootstrap`, packed into an OCI layout by `umoci`,
//! imported, unpacked, and run under bubblewrap. Slow and online (the Debian mirror), so ignored by
//! default: `cargo test -p sluice-image --test debian -- --ignored`. `scripts/debian-image.sh` does
//! the same with timings.

mod common;

use common::have;
use sluice_image::{ImageSource, ImageStore, RunDefaults};
use std::process::Command;
use std::time::Instant;

#[test]
#[ignore = "slow and online: debootstrap fetches ~300 MB from the Debian mirror (about a minute); needs root"]
fn a_debootstrapped_debian_image_imports_unpacks_and_runs() {
    if !common::root("the Debian image test (debootstrap)")
        || !have("debootstrap", "the Debian image test is skipped")
        || !have("umoci", "the Debian image cannot be packed")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&rootfs)
        .arg("http://deb.debian.org/debian")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "debootstrap failed");
    let layout = tmp.path().join("layout");
    let umoci = |args: &[&str]| {
        let status = Command::new("umoci").args(args).status().unwrap();
        assert!(status.success(), "umoci {args:?}");
    };
    let image_ref = format!("{}:debian", layout.display());
    umoci(&["init", "--layout", layout.to_str().unwrap()]);
    umoci(&["new", "--image", &image_ref]);
    umoci(&[
        "insert",
        "--image",
        &image_ref,
        rootfs.to_str().unwrap(),
        "/",
    ]);
    umoci(&[
        "config",
        "--image",
        &image_ref,
        "--config.cmd",
        "/bin/sh",
        "--config.user",
        "nobody:nogroup",
    ]);
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let start = Instant::now();
    let image = store
        .import(&ImageSource::OciLayout(layout), Some("debian"))
        .unwrap();
    let root = store.ensure_root(&image).unwrap();
    eprintln!(
        "import + unpack (this build; release figures: scripts/debian-image.sh): {:.2} s, {:?}",
        start.elapsed().as_secs_f64(),
        root.unpacked
    );
    let stats = root.unpacked.unwrap();
    assert!(
        stats.skipped_devices > 0,
        "debootstrap's /dev nodes are skipped"
    );
    assert!(root.path.join("usr/bin/dpkg").is_file());
    let defaults = RunDefaults::from_config(&image.config, &root.path).unwrap();
    assert_eq!(
        defaults.user.map(|u| u.uid),
        Some(65534),
        "nobody, from the image's /etc/passwd"
    );
    if have("bwrap", "the Debian root was not run") {
        let out = Command::new("bwrap")
            .arg("--ro-bind")
            .arg(&root.path)
            .args([
                "/",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--unshare-all",
                "/bin/sh",
                "-c",
                "cat /etc/debian_version",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("12"));
    }
}
