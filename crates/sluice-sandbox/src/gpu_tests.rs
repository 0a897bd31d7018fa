//! The GPU plan from fixture CDI specs and `ldconfig -p` output (`tests/fixtures/gpu/`): this
//! machine has no GPU, so the parsing and the mount plan are checked against files in the
//! shapes `nvidia-ctk cdi generate` and `ldconfig -p` write.

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpu")
}

#[test]
fn a_cdi_spec_gives_devices_libraries_links_env_and_says_what_it_ignored() {
    let plan = GpuPlan::discover(&[fixtures().join("cdi"), PathBuf::from("/no/such/dir")]);
    let GpuSource::Cdi(files) = &plan.source else {
        panic!("not from CDI: {plan:?}");
    };
    // Only the nvidia.com spec; the other vendor's and the broken one are not used.
    assert_eq!(files, &[fixtures().join("cdi/nvidia.yaml")]);
    let devices: Vec<&str> = plan.devices.iter().filter_map(|d| d.to_str()).collect();
    assert_eq!(
        devices,
        [
            "/dev/nvidia-modeset",
            "/dev/nvidia-uvm",
            "/dev/nvidia-uvm-tools",
            "/dev/nvidia0",
            "/dev/nvidiactl"
        ]
    );
    let libs: Vec<&str> = plan.libs.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(
        libs,
        [
            "libcuda.so.535.104.05",
            "libnvidia-ml.so.535.104.05",
            "libnvidia-ptxjitcompiler.so.535.104.05"
        ]
    );
    assert_eq!(
        plan.bins,
        [(PathBuf::from("/usr/bin/nvidia-smi"), "nvidia-smi".into())]
    );
    assert_eq!(plan.links, [("libcuda.so".into(), "libcuda.so.1".into())]);
    assert_eq!(
        plan.others,
        [PathBuf::from("/run/nvidia-persistenced/socket")]
    );
    assert_eq!(plan.env, [("NVIDIA_VISIBLE_DEVICES".into(), "void".into())]);
    let ignored = plan.ignored.join("; ");
    assert!(ignored.contains("firmware"), "{ignored}");
    assert!(ignored.contains("chmod"), "{ignored}");
    assert!(ignored.contains("nvidia-smi"), "{ignored}");
    assert!(!ignored.contains("update-ldcache"), "honoured: {ignored}");
}

#[test]
fn json_specs_parse_and_the_first_env_value_wins() {
    let plan = GpuPlan::discover(&[fixtures().join("cdi-json")]);
    assert!(matches!(plan.source, GpuSource::Cdi(_)));
    assert_eq!(plan.env, [("NVIDIA_VISIBLE_DEVICES".into(), "void".into())]);
    assert_eq!(
        plan.libs,
        [(
            PathBuf::from("/usr/lib64/libcuda.so.550.54.14"),
            "libcuda.so.550.54.14".into()
        )]
    );
    assert_eq!(
        plan.devices,
        [
            PathBuf::from("/dev/nvidia0"),
            PathBuf::from("/dev/nvidiactl")
        ]
    );
}

#[test]
fn ldconfig_gives_the_driver_libraries_of_x86_64_only() {
    let text = std::fs::read_to_string(fixtures().join("ldconfig-p.txt")).expect("fixture");
    let plan = GpuPlan::from_ldconfig(&text);
    assert_eq!(plan.source, GpuSource::Ldconfig);
    let libs: Vec<(&str, &str)> = plan
        .libs
        .iter()
        .map(|(p, n)| (p.to_str().unwrap_or(""), n.as_str()))
        .collect();
    assert_eq!(
        libs,
        [
            (
                "/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1",
                "libnvidia-ptxjitcompiler.so.1"
            ),
            (
                "/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
                "libnvidia-ml.so.1"
            ),
            ("/lib/x86_64-linux-gnu/libcuda.so.1", "libcuda.so.1"),
            ("/lib/x86_64-linux-gnu/libcuda.so", "libcuda.so"),
        ]
    );
    assert!(GpuPlan::from_ldconfig("").is_empty());
}

#[test]
fn the_mount_plan_fills_a_tmpfs_then_makes_it_read_only() {
    let plan = GpuPlan::discover(&[fixtures().join("cdi")]);
    let m = plan.mounts();
    assert!(
        matches!(&m[0], Mount::Tmpfs { dst, .. } if dst == Path::new(NVIDIA_DIR)),
        "{m:?}"
    );
    let ro = m
        .iter()
        .position(|x| matches!(x, Mount::RemountRo { dst } if dst == Path::new(NVIDIA_DIR)))
        .expect("remount");
    let lib = m
        .iter()
        .position(|x| matches!(x, Mount::RoBind { dst, .. } if dst == Path::new("/usr/local/nvidia/lib64/libcuda.so.535.104.05")))
        .expect("libcuda");
    let link = m
        .iter()
        .position(|x| matches!(x, Mount::Symlink { dst, target } if dst == Path::new("/usr/local/nvidia/lib64/libcuda.so") && target == Path::new("libcuda.so.1")))
        .expect("link");
    assert!(lib < ro && link < ro, "{m:?}");
    assert!(m.iter().any(|x| matches!(x, Mount::RoBind { dst, .. } if dst == Path::new("/usr/local/nvidia/bin/nvidia-smi"))));
    assert!(m
        .iter()
        .any(|x| matches!(x, Mount::DevBind { dst, .. } if dst == Path::new("/dev/nvidiactl"))));
    assert!(m.iter().any(|x| matches!(x, Mount::RoBind { dst, .. } if dst == Path::new("/run/nvidia-persistenced/socket"))));
    assert_eq!(plan.host_files().len(), 5);
}

#[test]
fn sonames_become_links_where_the_plan_has_none() {
    let t = tempfile::tempdir().expect("tempdir");
    // A host library the loader cache names (any will do): copy it under a versioned name.
    let text = std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let Some(libz) = text
        .lines()
        .filter(|l| l.contains("x86-64"))
        .find_map(|l| l.trim().strip_prefix("libz.so.1 ")?.split("=> ").nth(1))
    else {
        eprintln!("SKIPPED: ldconfig -p lists no libz.so.1");
        return;
    };
    let copy = t.path().join("libz.so.1.2.99");
    std::fs::copy(libz.trim(), &copy).expect("copy");
    let mut plan = GpuPlan::empty(GpuSource::Ldconfig);
    plan.libs.push((copy, "libz.so.1.2.99".into()));
    plan.add_sonames();
    assert_eq!(plan.links, [("libz.so.1".into(), "libz.so.1.2.99".into())]);
}
