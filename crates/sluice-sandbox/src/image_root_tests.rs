//! Unit tests of `image_root.rs`: an image's top-level entries, the sandbox's own directories,
//! the caller's host paths moved under `/run/host`, the environment, the GPU mounts, refusals.

use super::*;
use std::collections::BTreeMap;

fn cx(socket: &Path) -> Context<'_> {
    Context {
        socket_dir: socket,
        hidden: &[],
        user: None,
        path_var: "/usr/bin:/bin",
    }
}

/// A small image root: `usr/bin`, `etc`, `lib -> usr/lib`, its own `tmp`, `proc`, `run/sluice`,
/// `usr/local/nvidia` (the unpacker's mount points) and a stray top-level file.
fn image() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    for d in [
        "usr/bin",
        "usr/lib",
        "usr/local/nvidia",
        "etc",
        "tmp",
        "proc",
        "run/sluice",
    ] {
        std::fs::create_dir_all(t.path().join(d)).expect("mkdir");
    }
    std::os::unix::fs::symlink("usr/lib", t.path().join("lib")).expect("symlink");
    std::fs::write(t.path().join("VERSION"), "1").expect("file");
    t
}

fn by_dst(plan: &Plan) -> BTreeMap<String, String> {
    plan.mounts
        .iter()
        .filter_map(|m| match m {
            Mount::RoBind { src, dst } => Some((dst, format!("ro {}", src.display()))),
            Mount::Bind { src, dst } => Some((dst, format!("rw {}", src.display()))),
            Mount::Symlink { target, dst } => Some((dst, format!("ln {}", target.display()))),
            Mount::Tmpfs { dst, .. } => Some((dst, "tmpfs".into())),
            Mount::File { dst, data } => Some((dst, format!("file {data}"))),
            _ => None,
        })
        .map(|(d, v)| (d.display().to_string(), v))
        .collect()
}

fn spec(root: &Path) -> (SandboxSpec, ImageRoot) {
    let img = ImageRoot {
        path: root.to_path_buf(),
        user: (0, 0),
    };
    let s = SandboxSpec {
        command: vec!["/usr/bin/app".into(), "--serve".into()],
        env: vec![
            ("PATH".into(), "/opt/app/bin:/usr/bin".into()),
            ("APP_MODE".into(), "fast".into()),
        ],
        root: crate::spec::Root::Image(img.clone()),
        ..SandboxSpec::default()
    };
    (s, img)
}

#[test]
fn top_level_entries_are_bound_and_the_sandbox_keeps_its_own_dev_proc_tmp_and_run() {
    let t = image();
    let root = std::fs::canonicalize(t.path()).expect("canonical");
    let socket = PathBuf::from("/var/lib/sluice/sandboxes/w1-1/run");
    let (s, img) = spec(t.path());
    let p = plan(&s, &img, &cx(&socket), None).expect("plan");
    let m = by_dst(&p);
    assert_eq!(m["/usr"], format!("ro {}", root.join("usr").display()));
    assert_eq!(m["/etc"], format!("ro {}", root.join("etc").display()));
    assert_eq!(
        m["/VERSION"],
        format!("ro {}", root.join("VERSION").display())
    );
    assert_eq!(m["/lib"], "ln usr/lib", "a link stays a link");
    assert_eq!(m["/tmp"], "tmpfs", "never the image's /tmp");
    assert_eq!(m[SOCKET_DIR], format!("rw {}", socket.display()));
    assert!(!m.contains_key("/run"), "not the image's /run: {m:?}");
    assert!(!m.contains_key("/proc") && !m.contains_key("/dev"));
    assert!(
        matches!(p.mounts.last(), Some(Mount::RemountRo { dst }) if dst == Path::new("/")),
        "{:?}",
        p.mounts
    );
    assert_eq!(p.chdir, PathBuf::from("/"));
    assert_eq!(
        p.command,
        ["/usr/bin/app", "--serve"],
        "run as given, inside"
    );
    assert_eq!(p.user, Some((0, 0)));
    assert!(p.trusted.contains(&root), "revealed to the sandbox's user");
    let env: BTreeMap<_, _> = p.env.iter().cloned().collect();
    assert_eq!(env["PATH"], "/opt/app/bin:/usr/bin", "the image's PATH");
    assert_eq!(env["APP_MODE"], "fast");
    assert_eq!(env["SLUICE_SOCKET"], "/run/sluice/sluice.sock");
    assert!(!env.contains_key("LD_LIBRARY_PATH"));
}

#[test]
fn caller_paths_move_under_run_host_and_their_environment_follows() {
    let t = image();
    let shared = tempfile::tempdir().expect("tempdir");
    let shim = shared.path().join("libshim.so");
    std::fs::write(&shim, "").expect("shim");
    let pipe = shared.path().join("pipe");
    std::fs::create_dir(&pipe).expect("pipe");
    let socket = PathBuf::from("/s/run");
    let (mut s, img) = spec(t.path());
    s.read_only = vec![shim.clone()];
    s.read_write = vec![pipe.clone()];
    s.extra_env = vec![
        ("LD_PRELOAD".into(), shim.display().to_string()),
        ("CUDA_MPS_PIPE_DIRECTORY".into(), pipe.display().to_string()),
        ("OTHER".into(), "/usr/lib:relative".into()),
    ];
    s.network = true;
    let p = plan(&s, &img, &cx(&socket), None).expect("plan");
    let m = by_dst(&p);
    let shim_inside = inside(&shim).display().to_string();
    assert!(shim_inside.starts_with("/run/host/"), "{shim_inside}");
    assert!(m[&shim_inside].starts_with("ro "), "{m:?}");
    assert!(m[&inside(&pipe).display().to_string()].starts_with("rw "));
    assert_eq!(m["/etc/resolv.conf"], format!("file {SLIRP_RESOLV}"));
    let env: BTreeMap<_, _> = p.env.iter().cloned().collect();
    assert_eq!(env["LD_PRELOAD"], shim_inside);
    assert_eq!(
        env["CUDA_MPS_PIPE_DIRECTORY"],
        inside(&pipe).display().to_string()
    );
    assert_eq!(
        env["OTHER"], "/usr/lib:relative",
        "other values are left alone"
    );
}

#[test]
fn a_gpu_sandbox_gets_the_driver_under_usr_local_nvidia() {
    let t = image();
    let cdi = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpu/cdi");
    let g = GpuPlan::discover(&[cdi]);
    let (mut s, img) = spec(t.path());
    s.gpu = true;
    s.env.push(("LD_LIBRARY_PATH".into(), "/opt/lib".into()));
    let socket = PathBuf::from("/s/run");
    let p = plan(&s, &img, &cx(&socket), Some(&g)).expect("plan");
    let m = by_dst(&p);
    assert_eq!(m["/usr/local/nvidia"], "tmpfs");
    assert_eq!(m["/sys"], "ro /sys");
    assert!(m.contains_key("/usr/local/nvidia/lib64/libcuda.so.535.104.05"));
    let env: BTreeMap<_, _> = p.env.iter().cloned().collect();
    assert_eq!(env["LD_LIBRARY_PATH"], "/opt/lib:/usr/local/nvidia/lib64");
    assert_eq!(env["NVIDIA_VISIBLE_DEVICES"], "void");
    // The tmpfs over /usr/local/nvidia comes after the image's /usr is bound.
    let at = |d: &str| {
        p.mounts
            .iter()
            .position(|x| match x {
                Mount::RoBind { dst, .. } | Mount::Tmpfs { dst, .. } => dst == Path::new(d),
                _ => false,
            })
            .unwrap_or(usize::MAX)
    };
    assert!(at("/usr") < at("/usr/local/nvidia"));

    // Without the mount point (a root unpacked before it existed) a GPU sandbox is refused.
    std::fs::remove_dir(t.path().join("usr/local/nvidia")).expect("rmdir");
    let e = plan(&s, &img, &cx(&socket), Some(&g)).expect_err("refused");
    assert!(e.to_string().contains("/usr/local/nvidia"), "{e}");
}

#[test]
fn host_files_relative_workdirs_and_missing_roots_are_refused() {
    let t = image();
    let socket = PathBuf::from("/s/run");
    let (mut s, img) = spec(t.path());
    s.files = vec!["/etc/hostname".into()];
    let e = plan(&s, &img, &cx(&socket), None).expect_err("files");
    assert!(e.to_string().contains("files"), "{e}");
    let (mut s, img) = spec(t.path());
    s.workdir = Some("srv".into());
    let e = plan(&s, &img, &cx(&socket), None).expect_err("workdir");
    assert!(e.to_string().contains("workdir"), "{e}");
    let (s, _) = spec(t.path());
    let gone = ImageRoot {
        path: t.path().join("missing"),
        user: (0, 0),
    };
    let e = plan(&s, &gone, &cx(&socket), None).expect_err("root");
    assert!(e.to_string().contains("image root"), "{e}");
}
