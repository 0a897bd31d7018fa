//! The worker's configuration file, with embedded defaults (`config/worker.toml`). Unknown keys
//! are errors; [`WorkerConfig::validate`] checks what serde cannot. The API token may come from
//! the file (`auth_token`), a file it names (`auth_token_file`) or the environment
//! (`SLUICE_AUTH_TOKEN`); [`WorkerConfig::resolve_token`] settles which. The data directory
//! defaults by user ([`default_data_dir`]): `/var/lib/sluice` for root, the XDG data directory
//! otherwise, so the worker runs without root on its embedded defaults.

use serde::{Deserialize, Serialize};
use sluice_policy::scheduler::SchedulerConfig;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../../../config/worker.toml");

/// How sandboxes are isolated.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolationChoice {
    /// bubblewrap where it works, else unshare; the worker refuses to start if neither does
    /// (it never falls back to a plain process).
    Auto,
    /// bubblewrap (`bwrap`) in a user namespace; an error at start if it does not work here.
    Bubblewrap,
    /// util-linux `unshare` in a user namespace, with the `sluice` executable as the sandbox's
    /// init; an error at start if it does not work here.
    Unshare,
    /// The OCI runtime `runc` (rootful; no GPU or network sandboxes).
    Runc,
    /// The OCI runtime `crun` (rootful; no GPU or network sandboxes).
    Crun,
    /// A plain process: no namespaces, minimal root or seccomp (cgroup limits still apply).
    /// Refused unless [`WorkerConfig::allow_unisolated`] is set.
    Plain,
}

/// Who sandboxes run as and what they never see (`[sandbox]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// A worker running as root gives each sandbox its own host uid (and gid) from
    /// `uid_base .. uid_base + uid_count`: a range no other user or tool of the host uses.
    pub uid_base: u32,
    /// How many host uids (and gids) from `uid_base` sandboxes may use; positive, and
    /// `uid_base + uid_count` must fit in a `u32`.
    pub uid_count: u32,
    /// Host paths never bound into a sandbox, besides the data directory (e.g. the config).
    pub hide: Vec<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            uid_base: 100_000,
            uid_count: 65_536,
            hide: Vec::new(),
        }
    }
}

/// Container images (`[images]`, docs/images.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    /// Directories on the worker that images may be imported from by path (`POST /v1/images`
    /// with a `source`, and a spec's `image.source`); empty: `<data_dir>/imports`. Anything
    /// else must be uploaded.
    pub import_dirs: Vec<PathBuf>,
    /// Largest uploaded image archive, bytes (413 beyond).
    pub max_upload_bytes: u64,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            import_dirs: Vec::new(),
            max_upload_bytes: 4 << 30,
        }
    }
}

/// GPU discovery and sharing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuConfig {
    /// Skip NVML and simulate GPUs even where real ones exist (tests, or a GPU host whose GPUs
    /// should not be used).
    pub force_simulated: bool,
    /// How many GPUs to simulate when none is found (or `force_simulated`); positive.
    pub simulated_count: u32,
    /// Memory of each simulated GPU, GiB; finite and positive.
    pub simulated_memory_gib: f64,
    /// Run NVIDIA MPS (real GPUs only; ignored on simulated ones): the worker starts the MPS
    /// control daemon under `<data_dir>/mps`, tries to put the GPUs in exclusive-process mode,
    /// and gives each GPU sandbox an SM share and a pinned memory limit of its function's
    /// `gpu_memory_mb`.
    pub mps: bool,
    /// Preload the managed-memory shim into GPU sandboxes (real GPUs only).
    pub shim: bool,
    /// The shim library; default `libsluice_shim.so` beside the `sluice` executable.
    pub shim_path: Option<PathBuf>,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            force_simulated: false,
            simulated_count: 1,
            simulated_memory_gib: 24.0,
            mps: false,
            shim: false,
            shim_path: None,
        }
    }
}

/// Cluster membership: with `etcd` endpoints the worker joins a cluster (a lease-bound key,
/// the registry mirrored from etcd, local registration refused); without, it is standalone.
/// The agent itself lives in the `sluice-cluster` crate.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// etcd endpoints (`http://host:2379`); empty: standalone.
    pub etcd: Vec<String>,
    /// `host:port` routers reach this worker at (default: the listen address).
    pub advertise: Option<String>,
    /// Member id (default: derived from the advertised address).
    pub id: Option<String>,
    /// Lease TTL, seconds: a worker that cannot renew within it drains itself (default 10).
    pub lease_ttl_s: Option<u64>,
    /// Labels announced with the membership record.
    pub labels: BTreeMap<String, String>,
}

impl ClusterSettings {
    /// Whether the worker is a cluster member.
    pub fn enabled(&self) -> bool {
        !self.etcd.is_empty()
    }
}

/// The HTTP server's connection limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// A connection must deliver a complete request head within this long of opening or of its
    /// previous response, else it is closed: the idle keep-alive timeout and the slow-header
    /// (slow-loris) bound at once, as hyper times both from the same instant.
    pub header_timeout_ms: u64,
    /// A request's whole body must arrive within this long (else 408 and the connection closes).
    pub body_timeout_ms: u64,
    /// Most open connections. At the cap a new connection closes the longest-open idle one; if
    /// none is idle it is answered 503 and closed. Lowered at start to fit the descriptor limit.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_timeout_ms: 15_000,
            body_timeout_ms: 30_000,
            max_connections: 1024,
        }
    }
}

/// The whole worker configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Address the HTTP API listens on (port 0: a free port, logged and written to
    /// `<data_dir>/listen.addr`). A non-loopback address requires a token.
    pub listen: SocketAddr,
    /// Where the store (`sluice.redb`), images and sandbox directories live; defaults by user
    /// ([`default_data_dir`]). Empty is refused by [`WorkerConfig::validate`].
    pub data_dir: PathBuf,
    /// Bearer token every API call except `/healthz` must carry: visible ASCII, never blank.
    /// `None` (and no `auth_token_file`): no authentication, allowed on loopback addresses
    /// only. See [`WorkerConfig::resolve_token`] for the file and environment alternatives.
    pub auth_token: Option<String>,
    /// A file holding the token (its trailing newline ignored), instead of `auth_token`.
    pub auth_token_file: Option<PathBuf>,
    /// Largest request body, bytes; a larger one is answered 413 without being read. Positive.
    pub max_body_bytes: usize,
    /// Largest function response, bytes; a larger one fails the invocation
    /// ([`InvokeError::ResponseTooLarge`](crate::engine::InvokeError::ResponseTooLarge)).
    /// Positive.
    pub max_response_bytes: usize,
    /// Most invocations queued (not yet started) over all functions; beyond it new ones get 429
    /// with `Retry-After`. Positive.
    pub max_queued: usize,
    /// Most invocations queued for any one function; beyond it 429 as for `max_queued`.
    /// Positive.
    pub max_queued_per_function: usize,
    /// How sandboxes are isolated.
    pub isolation: IsolationChoice,
    /// Required with `isolation = "plain"`: the operator accepts running functions unisolated.
    pub allow_unisolated: bool,
    /// How long a new sandbox (a function's or a pipeline stage's) has to start and report
    /// ready, milliseconds, before its start counts as failed. Positive.
    pub start_timeout_ms: u64,
    /// How long finished asynchronous invocations (and their results) are kept, seconds;
    /// older ones are purged once a minute.
    pub async_retention_s: u64,
    /// Most times an accepted asynchronous invocation is run: after a crash or restart it is
    /// re-run until this many attempts (an attempt counts once it is sent to its sandbox).
    /// Positive.
    pub async_max_attempts: u32,
    /// At SIGTERM/SIGINT, how long running invocations get to finish before the worker exits.
    pub shutdown_grace_ms: u64,
    /// Concurrent CPU (non-GPU) invocations: the tokens of the CPU queue's one device; 0: one
    /// per core (resolved by [`WorkerConfig::cpu_slots()`]).
    pub cpu_slots: u32,
    /// `function.json` files registered (and stored) at start, relative to the working
    /// directory; one that cannot be read or fits no device stops the start.
    pub functions: Vec<PathBuf>,
    /// The HTTP server's connection limits (`[http]`).
    pub http: HttpConfig,
    /// GPU discovery and sharing (`[gpu]`).
    pub gpu: GpuConfig,
    /// Sandbox users and hidden paths (`[sandbox]`).
    pub sandbox: SandboxConfig,
    /// Container images (`[images]`).
    pub images: ImagesConfig,
    /// The scheduling policy and its knobs (`[scheduler]`), shared with the simulator; the GPU
    /// queue uses it as is, the CPU queue with `cpu_slots` tokens and no utilisation gate.
    pub scheduler: SchedulerConfig,
    /// Cluster membership (`[cluster]`); standalone without etcd endpoints.
    pub cluster: ClusterSettings,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: default_data_dir(
                // SAFETY: geteuid(2) takes no arguments, touches no memory of ours and always
                // succeeds.
                unsafe { libc::geteuid() },
                std::env::var_os("XDG_DATA_HOME"),
                std::env::var_os("HOME"),
            )
            .unwrap_or_default(),
            auth_token: None,
            auth_token_file: None,
            max_body_bytes: 8 << 20,
            max_response_bytes: 8 << 20,
            max_queued: 10_000,
            max_queued_per_function: 2_000,
            isolation: IsolationChoice::Auto,
            allow_unisolated: false,
            start_timeout_ms: 30_000,
            async_retention_s: 86_400,
            async_max_attempts: 3,
            shutdown_grace_ms: 30_000,
            cpu_slots: 0,
            functions: Vec::new(),
            http: HttpConfig::default(),
            gpu: GpuConfig::default(),
            sandbox: SandboxConfig::default(),
            images: ImagesConfig::default(),
            scheduler: SchedulerConfig::default(),
            cluster: ClusterSettings::default(),
        }
    }
}

/// Where the worker keeps its data when the configuration names no `data_dir`: `/var/lib/sluice`
/// for root (`uid` 0); for other users `$XDG_DATA_HOME/sluice`, else `$HOME/.local/share/sluice`
/// (relative values are ignored, as the XDG base directory specification says). `None` when a
/// non-root user has neither.
pub fn default_data_dir(
    uid: u32,
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    if uid == 0 {
        return Some(PathBuf::from("/var/lib/sluice"));
    }
    let absolute = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(xdg) = absolute(xdg_data_home) {
        return Some(xdg.join("sluice"));
    }
    absolute(home).map(|h| h.join(".local/share/sluice"))
}

/// A configuration that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file, as given.
        path: String,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// The text is not valid TOML for [`WorkerConfig`], or fails [`WorkerConfig::validate`].
    #[error("invalid config {origin}: {message}")]
    Invalid {
        /// Where the text came from: a file's path, or `(embedded)`.
        origin: String,
        /// What is wrong, from the TOML parser or the validation.
        message: String,
    },
}

impl WorkerConfig {
    /// The embedded defaults.
    pub fn embedded() -> Self {
        Self::parse(DEFAULT_TOML, "(embedded)").expect("the embedded config is valid")
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let cfg: WorkerConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        cfg.validate().map_err(invalid)?;
        Ok(cfg)
    }

    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Settles the API token: `SLUICE_AUTH_TOKEN` (passed in as `env`) if set, else the
    /// contents of `auth_token_file`, else `auth_token`; then checks it.
    pub fn resolve_token(&mut self, env: Option<String>) -> Result<(), String> {
        if let Some(t) = env {
            check_token(&t, "SLUICE_AUTH_TOKEN")?;
            self.auth_token = Some(t);
            self.auth_token_file = None;
        } else if let Some(path) = self.auth_token_file.take() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read auth_token_file {}: {e}", path.display()))?;
            let t = text.strip_suffix('\n').unwrap_or(&text);
            let t = t.strip_suffix('\r').unwrap_or(t);
            check_token(t, &format!("auth_token_file {}", path.display()))?;
            self.auth_token = Some(t.to_string());
        }
        self.validate()
    }

    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<(), String> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(
                "no data directory: set data_dir (or --data-dir), or HOME or XDG_DATA_HOME".into(),
            );
        }
        if self.auth_token.is_some() && self.auth_token_file.is_some() {
            return Err("set auth_token or auth_token_file, not both".into());
        }
        if let Some(t) = &self.auth_token {
            check_token(t, "auth_token")?;
        }
        if !self.listen.ip().is_loopback()
            && self.auth_token.is_none()
            && self.auth_token_file.is_none()
        {
            return Err(format!(
                "listen = {} is not a loopback address: set auth_token, auth_token_file or \
                 SLUICE_AUTH_TOKEN",
                self.listen
            ));
        }
        let h = &self.http;
        if h.header_timeout_ms == 0 || h.body_timeout_ms == 0 || h.max_connections == 0 {
            return Err(
                "http.header_timeout_ms, http.body_timeout_ms and http.max_connections must be \
                 positive"
                    .into(),
            );
        }
        if self.images.max_upload_bytes == 0 {
            return Err("images.max_upload_bytes must be positive".into());
        }
        if self.max_body_bytes == 0 || self.max_response_bytes == 0 {
            return Err("max_body_bytes and max_response_bytes must be positive".into());
        }
        if self.max_queued == 0 || self.max_queued_per_function == 0 {
            return Err("max_queued and max_queued_per_function must be positive".into());
        }
        if self.start_timeout_ms == 0 || self.async_max_attempts == 0 {
            return Err("start_timeout_ms and async_max_attempts must be positive".into());
        }
        if self.isolation == IsolationChoice::Plain && !self.allow_unisolated {
            return Err(
                "isolation = \"plain\" runs functions unisolated: set allow_unisolated = true to \
                 accept that"
                    .into(),
            );
        }
        let sb = &self.sandbox;
        if sb.uid_base == 0 || sb.uid_count == 0 || sb.uid_base.checked_add(sb.uid_count).is_none()
        {
            return Err(
                "sandbox.uid_base and sandbox.uid_count must be a non-empty range above 0".into(),
            );
        }
        if !(self.gpu.simulated_memory_gib.is_finite() && self.gpu.simulated_memory_gib > 0.0)
            || self.gpu.simulated_count == 0
        {
            return Err("gpu.simulated_count and gpu.simulated_memory_gib must be positive".into());
        }
        if self
            .cluster
            .lease_ttl_s
            .is_some_and(|t| !(2..=600).contains(&t))
        {
            return Err("cluster.lease_ttl_s must be in 2..=600".into());
        }
        sluice_policy::scheduler::Scheduler::new(&self.scheduler, vec![1 << 30])
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// CPU slots, resolving 0 to the number of cores.
    pub fn cpu_slots(&self) -> u32 {
        if self.cpu_slots > 0 {
            self.cpu_slots
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
        }
    }
}

/// A usable token: not blank, and only visible ASCII (what an `Authorization` header carries).
fn check_token(t: &str, origin: &str) -> Result<(), String> {
    if t.trim().is_empty() {
        return Err(format!(
            "{origin} is blank: a blank token would let anyone in"
        ));
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{origin} must be visible ASCII characters only (no spaces or control characters)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse() {
        let c = WorkerConfig::embedded();
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.scheduler.policy, "mqfq-sticky");
    }

    #[test]
    fn non_loopback_needs_a_token_and_typos_fail() {
        let e = WorkerConfig::parse("listen = \"0.0.0.0:80\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("auth_token"), "{e}");
        assert!(WorkerConfig::parse("listen = \"0.0.0.0:80\"\nauth_token = \"x\"\n", "t").is_ok());
        let e = WorkerConfig::parse("listne = \"127.0.0.1:1\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("listne"), "{e}");
        let e = WorkerConfig::parse("[scheduler]\npolicy = \"lifo\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("lifo"), "{e}");
    }

    #[test]
    fn blank_tokens_are_refused_and_the_token_can_come_from_a_file_or_the_environment() {
        for blank in ["\"\"", "\"  \"", "\"a b\""] {
            let e = WorkerConfig::parse(&format!("auth_token = {blank}\n"), "t").unwrap_err();
            assert!(e.to_string().contains("auth_token"), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let text = format!(
            "listen = \"0.0.0.0:80\"\nauth_token_file = \"{}\"\n",
            file.display()
        );
        let mut c = WorkerConfig::parse(&text, "t").unwrap();
        c.resolve_token(None).unwrap();
        assert_eq!(c.auth_token.as_deref(), Some("from-file"));
        c.resolve_token(Some("from-env".into())).unwrap();
        assert_eq!(
            c.auth_token.as_deref(),
            Some("from-env"),
            "the environment wins"
        );
        assert!(c.resolve_token(Some(" ".into())).is_err());
        std::fs::write(&file, "\n").unwrap();
        let mut c = WorkerConfig::parse(&text, "t").unwrap();
        assert!(c.resolve_token(None).unwrap_err().contains("blank"));
        let both = format!(
            "auth_token = \"x\"\nauth_token_file = \"{}\"\n",
            file.display()
        );
        assert!(WorkerConfig::parse(&both, "t").is_err());
    }

    #[test]
    fn the_data_directory_defaults_by_user_and_environment() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        let d = |uid, xdg, home| default_data_dir(uid, xdg, home);
        assert_eq!(d(0, os("/x"), os("/root")), Some("/var/lib/sluice".into()));
        assert_eq!(
            d(1000, os("/h/xdg"), os("/h")),
            Some("/h/xdg/sluice".into())
        );
        assert_eq!(
            d(1000, None, os("/h")),
            Some("/h/.local/share/sluice".into())
        );
        assert_eq!(
            d(1000, os("relative"), os("/h")),
            Some("/h/.local/share/sluice".into()),
            "a relative XDG_DATA_HOME is ignored"
        );
        assert_eq!(d(1000, None, None), None);
        assert_eq!(d(1000, os(""), os("")), None);
        // A configuration without data_dir takes the default; none at all is refused by name.
        let c = WorkerConfig::parse("", "t").unwrap();
        assert!(c.data_dir.is_absolute(), "{}", c.data_dir.display());
        let none = WorkerConfig {
            data_dir: PathBuf::new(),
            ..WorkerConfig::default()
        };
        assert!(none.validate().unwrap_err().contains("data_dir"));
    }

    #[test]
    fn plain_isolation_needs_an_explicit_allowance() {
        let e = WorkerConfig::parse("isolation = \"plain\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("allow_unisolated"), "{e}");
        let ok = WorkerConfig::parse("isolation = \"plain\"\nallow_unisolated = true\n", "t");
        assert!(ok.is_ok());
        let e = WorkerConfig::parse("[sandbox]\nuid_count = 0\n", "t").unwrap_err();
        assert!(e.to_string().contains("uid_count"), "{e}");
    }
}
