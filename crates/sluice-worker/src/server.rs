//! Starting and stopping a whole worker: lock the data directory, open the store and the image
//! store, find devices, choose the sandbox isolation, build the engine, re-register stored
//! functions (image functions resolved again, image references rebuilt), resume accepted
//! asynchronous invocations, serve the API (`http`) until SIGINT/SIGTERM, publish the bound
//! address (`datadir`), then stop gracefully: queued invocations are handed back (an accepted
//! asynchronous one stays Queued, attempts untouched, and runs at the next start), running
//! ones get `shutdown_grace_ms` to finish.

mod datadir;
mod http;

use crate::api::{self, AppState, AsyncTasks};
use crate::config::{IsolationChoice, WorkerConfig};
use crate::devices::{self, BackendKind, MpsDaemon, SimulatedConfig};
use crate::engine::Engine;
use crate::function::FunctionSpec;
use crate::pipeline::{DeployRequest, Pipelines};
use crate::sandbox::{Isolation, IsolationChoice as Choice, Launcher, LauncherConfig};
use crate::store::Store;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A worker ready to serve.
pub struct Worker {
    /// What the API serves (engine, store, pipelines, images); the cluster agent and tests
    /// drive it directly.
    pub state: api::Shared,
    _mps: Option<MpsDaemon>,
    _lock: datadir::DirLock,
}

/// The sandbox launcher the configuration asks for: sandboxes under `<data_dir>/sandboxes`,
/// which (with the data directory, the shared-memory root and the configured paths) no sandbox
/// may have bound; unshare mode's helper is this executable (`sluice`).
fn launcher(cfg: &WorkerConfig, shm_root: &Path) -> Result<Launcher> {
    let mut lc = LauncherConfig::new(cfg.data_dir.join("sandboxes"));
    lc.isolation = match cfg.isolation {
        IsolationChoice::Auto => Choice::Auto,
        IsolationChoice::Bubblewrap => Choice::Only(Isolation::Bubblewrap),
        IsolationChoice::Unshare => Choice::Only(Isolation::Unshare),
        IsolationChoice::Runc => Choice::Only(Isolation::Oci(sluice_sandbox::oci::Runtime::Runc)),
        IsolationChoice::Crun => Choice::Only(Isolation::Oci(sluice_sandbox::oci::Runtime::Crun)),
        IsolationChoice::Plain => Choice::Only(Isolation::Plain),
    };
    lc.allow_unisolated = cfg.allow_unisolated;
    lc.uids = sluice_sandbox::UidRange {
        base: cfg.sandbox.uid_base,
        count: cfg.sandbox.uid_count,
    };
    lc.hidden = cfg.sandbox.hide.clone();
    lc.hidden.push(cfg.data_dir.clone());
    lc.hidden.push(shm_root.to_path_buf());
    Ok(Launcher::new(lc)?)
}

/// Reads a `function.json`, resolving a relative `workdir` and relative `PYTHONPATH`-style env
/// values against `base` — or, for a function from an image (whose workdir and env name paths
/// inside the image), a relative path in `image.source` against the file's own directory.
pub fn load_function_file(path: &Path, base: &Path) -> Result<FunctionSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read function file {}", path.display()))?;
    let mut spec: FunctionSpec = serde_json::from_str(&text)
        .with_context(|| format!("invalid function file {}", path.display()))?;
    if let Some(image) = spec.image.take() {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = match dir {
            Some(d) => std::fs::canonicalize(d).unwrap_or_else(|_| base.join(d)),
            None => base.to_path_buf(),
        };
        spec.image = Some(image.with_source_under(&dir));
        spec.validate()
            .with_context(|| format!("in {}", path.display()))?;
        return Ok(spec);
    }
    if let Some(w) = spec.workdir.take() {
        spec.workdir = Some(if w.is_relative() { base.join(w) } else { w });
    }
    if let Some(p) = spec.env.get_mut("PYTHONPATH") {
        let joined: Vec<String> = p
            .split(':')
            .map(|part| {
                let pb = PathBuf::from(part);
                if pb.is_relative() { base.join(pb) } else { pb }
                    .display()
                    .to_string()
            })
            .collect();
        *p = joined.join(":");
    }
    spec.validate()
        .with_context(|| format!("in {}", path.display()))?;
    Ok(spec)
}

impl Worker {
    /// Builds the worker from `cfg` (inside a tokio runtime).
    pub async fn start(cfg: WorkerConfig) -> Result<Worker> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data_dir {}", cfg.data_dir.display()))?;
        let lock = datadir::lock(&cfg.data_dir)?;
        datadir::forget_address(&cfg.data_dir);
        let store = Arc::new(Store::open(&cfg.data_dir.join("sluice.redb"))?);
        let sim = SimulatedConfig {
            count: cfg.gpu.simulated_count,
            memory_gib: cfg.gpu.simulated_memory_gib,
        };
        let devices = devices::detect(&sim, cfg.gpu.force_simulated);
        if devices.kind() == BackendKind::Simulated {
            tracing::warn!(
                "no GPU found: {} simulated GPU(s); GPU functions run on the CPU but are scheduled as on a GPU",
                devices.gpus().len()
            );
        }
        let mps = if cfg.gpu.mps && devices.kind() == BackendKind::Nvml {
            if let Err(e) = devices.set_exclusive_process() {
                tracing::warn!("cannot set exclusive-process compute mode for MPS: {e}");
            }
            Some(MpsDaemon::start(
                "nvidia-cuda-mps-control".into(),
                cfg.data_dir.join("mps"),
            )?)
        } else {
            None
        };
        let launcher = launcher(&cfg, &shm_root(&cfg.data_dir))?;
        tracing::info!("sandboxes: {}", launcher.isolation());
        let missing = launcher.limits_not_enforced();
        if !missing.is_empty() {
            tracing::warn!(
                "limits not enforced: {}",
                crate::sandbox::describe_not_enforced(&missing)
            );
        }
        launcher.sweep_stale();
        let cwd = std::env::current_dir()?;
        let files = cfg.functions.clone();
        let cfg_data_dir = cfg.data_dir.clone();
        let engine = Engine::new(cfg, devices, launcher)?;
        let images = Arc::new(crate::images::Images::open(
            &cfg_data_dir,
            &engine.config().images.import_dirs,
            engine.config().images.max_upload_bytes,
        )?);
        engine.set_images(images.clone());
        let (stored, damaged) = store.load_functions()?;
        for e in damaged {
            tracing::error!("a stored function cannot be read and is not registered: {e}");
        }
        let stored = {
            let images = images.clone();
            tokio::task::spawn_blocking(move || crate::images::restore(&images, stored)).await?
        };
        for spec in stored {
            if let Err(e) = engine.check_fits(&spec) {
                tracing::error!(function = %spec.name, "{e}: its invocations will fail");
            }
            engine.register(spec);
        }
        for f in &files {
            let mut spec = load_function_file(f, &cwd)?;
            engine
                .check_fits(&spec)
                .with_context(|| format!("in {}", f.display()))?;
            if let Some(image) = spec.image.clone() {
                let im = images.clone();
                let s = spec.clone();
                let r = tokio::task::spawn_blocking(move || {
                    im.resolve(&image, &s.command, s.workdir.as_deref(), &s.env, &s.name)
                })
                .await?
                .with_context(|| format!("in {}", f.display()))?;
                spec.image = Some(r.pinned);
                spec.resolved = Some(r.image);
            }
            store.put_function(&spec)?;
            engine.register(spec);
        }
        let pipelines = Pipelines::new(engine.clone(), shm_root(&cfg_data_dir));
        let state = Arc::new(AppState {
            engine,
            store,
            pipelines,
            async_tasks: AsyncTasks::default(),
            images,
        });
        tokio::spawn(redeploy_pipelines(state.clone()));
        tokio::spawn(purge_loop(
            state.store.clone(),
            state.engine.config().async_retention_s,
        ));
        let resumed = api::resume_async(state.clone())
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        if resumed > 0 {
            tracing::info!("re-running {resumed} accepted asynchronous invocation(s)");
        }
        Ok(Worker {
            state,
            _mps: mps,
            _lock: lock,
        })
    }

    /// Serves the API on `listener` (its address written to `<data_dir>/listen.addr` and
    /// logged) until `shutdown` resolves, then stops gracefully.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let engine = self.state.engine.clone();
        let cfg = engine.config().clone();
        let grace = std::time::Duration::from_millis(cfg.shutdown_grace_ms);
        let limits = http::Limits {
            header_timeout: std::time::Duration::from_millis(cfg.http.header_timeout_ms),
            max_connections: connection_cap(cfg.http.max_connections),
            grace,
        };
        let addr = listener.local_addr()?;
        let file = datadir::publish_address(&cfg.data_dir, addr)?;
        tracing::info!(
            "serving on http://{addr} (written to {}), at most {} connections",
            file.display(),
            limits.max_connections
        );
        let app = api::router(self.state.clone());
        let stopper = engine.clone();
        http::serve(listener, app, limits, async move {
            shutdown.await;
            let handed_back = stopper.stop();
            tracing::info!(
                "stopping: {handed_back} queued invocation(s) handed back, {} running get up to {} ms",
                stopper.running(),
                grace.as_millis()
            );
        })
        .await;
        if !engine.wait_idle(grace).await {
            tracing::warn!(
                "{} invocation(s) still running at the end of the grace period",
                engine.running()
            );
        }
        self.state.async_tasks.wait(grace).await;
        self.state.pipelines.shutdown().await;
        datadir::forget_address(&cfg.data_dir);
        Ok(())
    }
}

/// The connection cap: `configured`, lowered to fit the process's descriptor limit with room
/// for everything else the worker opens (sandboxes, their sockets and pipes, the store).
fn connection_cap(configured: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes only into `*rlim`; `&mut lim` is a valid, aligned, exclusively
    // borrowed `libc::rlimit` that outlives the call. On failure it writes nothing (rc checked).
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return configured;
    }
    let nofile = usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX);
    let reserve = (nofile / 4).max(64);
    let fits = nofile.saturating_sub(reserve).max(1);
    if fits < configured {
        tracing::warn!(
            "http.max_connections lowered from {configured} to {fits} to fit the descriptor limit of {nofile}"
        );
    }
    configured.min(fits)
}

/// Where pipelines' shared-memory groups live: `/dev/shm/sluice` (a tmpfs) where it exists,
/// `/dev/shm/sluice-<uid>` for a worker that is not root (a root worker's directory is not
/// writable to it), else under the data directory.
fn shm_root(data_dir: &Path) -> PathBuf {
    let dev_shm = Path::new("/dev/shm");
    // SAFETY: geteuid(2) takes no arguments, touches no memory of ours and always succeeds.
    let uid = unsafe { libc::geteuid() };
    match (dev_shm.is_dir(), uid) {
        (true, 0) => dev_shm.join("sluice"),
        (true, uid) => dev_shm.join(format!("sluice-{uid}")),
        (false, _) => data_dir.join("shm"),
    }
}

/// Deploys the stored pipelines again after a restart (in the background: stages take seconds
/// to start); one that fails is logged and left stored, so a later update can fix it.
async fn redeploy_pipelines(state: Arc<AppState>) {
    let store = state.store.clone();
    let stored =
        match tokio::task::spawn_blocking(move || store.list_pipelines::<DeployRequest>()).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return tracing::error!("cannot read stored pipelines: {e}"),
            Err(e) => return tracing::error!("cannot read stored pipelines: {e}"),
        };
    for (name, req) in stored {
        match state.pipelines.deploy(req, false).await {
            Ok(_) => tracing::info!(pipeline = %name, "pipeline deployed again"),
            // Why is in the deploy's own warning; the request stays stored.
            Err(_) => tracing::error!(pipeline = %name, "stored pipeline not deployed again"),
        }
    }
}

/// Deletes finished asynchronous invocations older than the retention, once a minute.
async fn purge_loop(store: Arc<Store>, retention_s: u64) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let cutoff = now_ms.saturating_sub(retention_s.saturating_mul(1000));
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.purge_finished_before(cutoff)).await {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!("purged {n} finished invocation(s) past retention")
            }
            Ok(Err(e)) => tracing::warn!("retention purge failed: {e}"),
            _ => {}
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
