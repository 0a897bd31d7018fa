//! Starting a sandbox under an OCI runtime (`oci`): the sandbox's directory and socket
//! directory as in every mode, the same plan (host minimal root or image root), the bundle, the
//! launcher's cgroup (which the runtime joins, so teardown and the stale-cgroup sweep are as in
//! every mode), and `<runtime> --root <dir>/state run --bundle <dir>/bundle w<pid>-<id>` in a new
//! session, dying with the launcher. The runtime runs as root: it sets the container up and
//! starts the function as the sandbox's unprivileged host user.

use crate::admit::Context;
use crate::cgroup::{self, Cgroup};
use crate::launch::own_dir;
use crate::launcher::Inner;
use crate::oci::{self, Bundle, Runtime, Teardown};
use crate::preexec::{last_cap, PreExec};
use crate::process::{Parts, Sandbox, Started};
use crate::rootfs::{self, DEFAULT_PATH};
use crate::spec::Root;
use crate::users::UserLease;
use crate::{image_root, SandboxError, SandboxSpec};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Starts `spec` under `rt` in `dir` as `user`.
pub(crate) async fn start(
    inner: &Inner,
    spec: &SandboxSpec,
    dir: &Path,
    user: UserLease,
    rt: Runtime,
) -> Result<Sandbox, SandboxError> {
    if spec.gpu || spec.network {
        return Err(SandboxError::BadSpec(format!(
            "GPU and networked sandboxes are not supported under {} (use bubblewrap or unshare)",
            rt.program()
        )));
    }
    own_dir(dir, &user)?;
    let run = dir.join("run");
    own_dir(&run, &user)?;
    let ids = (user.uid(), user.gid());
    let separate = inner.root && user.is_separate();
    let cx = Context {
        socket_dir: &run,
        hidden: &inner.hidden,
        user: separate.then_some(ids),
        path_var: &inner.path_var,
    };
    let plan = match &spec.root {
        Root::HostMinimal => rootfs::plan(spec, &cx)?,
        Root::Image(image) => image_root::plan(spec, image, &cx, None)?,
    };
    let name = cgroup::name(spec.id);
    let bundle = oci::write_bundle(
        &plan,
        &Bundle {
            dir,
            ids,
            limits: &spec.limits,
            cgroup: format!("/sluice/{name}"),
        },
    )?;
    let cgroup = Cgroup::create(inner.cgroups, &inner.cgroup_root, spec.id, &spec.limits)?;
    let program = std::env::var("PATH")
        .ok()
        .and_then(|p| crate::resolve::resolve(rt.program(), &p))
        .map_or_else(|| PathBuf::from(rt.program()), |p| p.path);
    let state = dir.join("state");
    let mut cmd = Command::new(&program);
    cmd.arg("--root")
        .arg(&state)
        .arg("run")
        .arg("--bundle")
        .arg(&bundle)
        .arg(&name)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let pre = PreExec {
        cgroup_procs: Vec::new(),
        reveal: Vec::new(),
        inherit: Vec::new(),
        drop_to: None,
        last_cap: last_cap(),
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
    };
    // SAFETY: `PreExec::run` only makes system calls on data prepared before fork.
    unsafe {
        cmd.pre_exec(move || pre.run());
    }
    let child = match tokio::process::Command::from(cmd).spawn() {
        Ok(c) => c,
        Err(source) => {
            if let Some(c) = &cgroup {
                c.remove();
            }
            return Err(SandboxError::Launch {
                program: program.display().to_string(),
                source,
            });
        }
    };
    let started = Started::open(spec.id, inner.isolation, run, user)?;
    let parts = Parts {
        child,
        cgroup,
        dir: dir.to_path_buf(),
        network: None,
        oci: Some(Teardown {
            program,
            state,
            id: name,
        }),
    };
    Ok(Sandbox::start(started, parts))
}
