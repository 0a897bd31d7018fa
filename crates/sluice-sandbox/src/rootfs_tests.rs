//! Unit tests of `rootfs.rs`: what a plan binds, in which order, and what it refuses.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn cx<'a>(socket: &'a Path, hidden: &'a [PathBuf]) -> Context<'a> {
    Context {
        socket_dir: socket,
        hidden,
        user: None,
        path_var: "/usr/bin:/bin",
    }
}

fn dsts(plan: &Plan) -> Vec<String> {
    plan.mounts
        .iter()
        .map(|m| match m {
            Mount::RoBind { dst, .. } => format!("ro {}", dst.display()),
            Mount::Bind { dst, .. } => format!("rw {}", dst.display()),
            Mount::DevBind { dst, .. } => format!("dev {}", dst.display()),
            Mount::Tmpfs { dst, .. } => format!("tmpfs {}", dst.display()),
            Mount::Proc { dst } => format!("proc {}", dst.display()),
            Mount::Dev { dst } => format!("devfs {}", dst.display()),
            Mount::Symlink { dst, .. } => format!("ln {}", dst.display()),
            Mount::Dir { dst } => format!("dir {}", dst.display()),
            Mount::File { dst, .. } => format!("file {}", dst.display()),
            Mount::RemountRo { dst } => format!("ro-remount {}", dst.display()),
        })
        .collect()
}

fn function_dir() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(t.path().join("main.sh"), "#!/bin/sh\n").expect("write");
    std::fs::create_dir(t.path().join("lib")).expect("mkdir");
    t
}

#[test]
fn a_function_under_tmp_gets_its_files_after_the_private_tmp() {
    let f = function_dir();
    let socket = PathBuf::from("/var/lib/sluice/sandboxes/w1-1/run");
    let spec = SandboxSpec {
        command: vec!["sh".into(), f.path().join("main.sh").display().to_string()],
        env: vec![(
            "PYTHONPATH".into(),
            format!("{}:relative", f.path().join("lib").display()),
        )],
        workdir: Some(f.path().to_path_buf()),
        ..SandboxSpec::default()
    };
    let plan = plan(&spec, &cx(&socket, &[])).expect("plan");
    let d = dsts(&plan);
    let at = |x: &str| d.iter().position(|y| y == x).unwrap_or(usize::MAX);
    let wd = std::fs::canonicalize(f.path()).expect("canonical");
    assert!(
        at("tmpfs /tmp") < at(&format!("ro {}", wd.display())),
        "{d:?}"
    );
    assert_eq!(
        d.iter()
            .filter(|x| x.starts_with("ro ") && x.contains(&*wd.to_string_lossy()))
            .count(),
        1,
        "the script and the PYTHONPATH entry are inside the bound workdir: {d:?}"
    );
    assert!(d.contains(&"rw /run/sluice".to_string()), "{d:?}");
    for f in [
        "file /etc/passwd",
        "file /etc/group",
        "file /etc/hosts",
        "devfs /dev",
        "proc /proc",
    ] {
        assert!(d.contains(&f.to_string()), "{f}: {d:?}");
    }
    assert!(!d
        .iter()
        .any(|x| x.contains("shadow") || x.contains("/root") || x.contains("/home")));
    assert_eq!(d.last().map(String::as_str), Some("ro-remount /"));
    assert_eq!(plan.chdir, wd);
    assert!(
        plan.command[0].ends_with("/sh"),
        "resolved in PATH: {:?}",
        plan.command
    );
    let env: std::collections::HashMap<_, _> = plan.env.iter().cloned().collect();
    assert_eq!(env["SLUICE_SOCKET"], "/run/sluice/sluice.sock");
    assert_eq!(env["HOME"], "/tmp");
    assert!(plan.trusted.contains(&socket));
}

#[test]
fn hidden_and_missing_paths_are_refused_and_arguments_that_are_not_paths_ignored() {
    let f = function_dir();
    let socket = PathBuf::from("/x/run");
    let hidden = vec![std::fs::canonicalize(f.path()).expect("canonical")];
    let mut spec = SandboxSpec {
        command: vec!["sh".into(), "-c".into(), "a/b".into()],
        ..SandboxSpec::default()
    };
    assert!(
        plan(&spec, &cx(&socket, &hidden)).is_ok(),
        "a/b is just text"
    );
    spec.files = vec![f.path().join("main.sh")];
    let e = plan(&spec, &cx(&socket, &hidden)).expect_err("hidden");
    assert!(e.to_string().contains("files"), "{e}");
    spec.files = vec!["/root".into()];
    assert!(plan(&spec, &cx(&socket, &[])).is_err(), "never /root");
    spec.files = vec!["/no/such/file".into()];
    assert!(plan(&spec, &cx(&socket, &[])).is_err());
    spec.files.clear();
    spec.workdir = Some(f.path().join("main.sh"));
    assert!(
        plan(&spec, &cx(&socket, &[])).is_err(),
        "a workdir must be a directory"
    );
    spec.workdir = None;
    spec.command = vec!["no-such-program-anywhere".into()];
    let e = plan(&spec, &cx(&socket, &[])).expect_err("missing");
    assert!(e.to_string().contains("PATH"), "{e}");
}

#[test]
fn networked_sandboxes_use_the_user_mode_resolver_and_gpu_ones_see_sys() {
    let socket = PathBuf::from("/x/run");
    let spec = SandboxSpec {
        command: vec!["sh".into()],
        network: true,
        gpu: true,
        ..SandboxSpec::default()
    };
    let plan = plan(&spec, &cx(&socket, &[])).expect("plan");
    let resolv = plan.mounts.iter().find_map(|m| match m {
        Mount::File { dst, data } if dst == Path::new("/etc/resolv.conf") => Some(data.clone()),
        _ => None,
    });
    assert_eq!(resolv.as_deref(), Some(SLIRP_RESOLV));
    assert!(dsts(&plan).contains(&"ro /sys".to_string()));
}

#[test]
fn a_path_through_dot_dot_gets_the_directories_it_passes() {
    let f = function_dir();
    let named = f.path().join("lib/../main.sh");
    let spec = SandboxSpec {
        command: vec!["sh".into(), named.display().to_string()],
        ..SandboxSpec::default()
    };
    let plan = plan(&spec, &cx(Path::new("/x/run"), &[])).expect("plan");
    let d = dsts(&plan);
    let lib = std::fs::canonicalize(f.path())
        .expect("canonical")
        .join("lib");
    assert!(d.contains(&format!("dir {}", lib.display())), "{d:?}");
    let at = |x: &str| d.iter().position(|y| y == x).unwrap_or(usize::MAX);
    assert!(at(&format!("dir {}", lib.display())) < at("ro-remount /"));
}
