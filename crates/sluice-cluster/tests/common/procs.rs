//! Real processes on loopback: etcd and nats-server on free ports (a start that fails, e.g. a
//! port taken meanwhile, is retried on new ports, at most 8 times), workers and routers from
//! the `sluice` binary (port 0; the bound address read back). Every process is SIGKILLed when
//! its handle drops.

use super::http::{call, json, wait_for};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process with its log file.
pub struct Proc {
    child: Option<Child>,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with output to `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Proc {
            child: Some(child),
            log,
        }
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILLs it and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Starts `spawn(port…)` until it listens on its first port, on fresh ports each try.
fn start_retrying(
    what: &str,
    ports: usize,
    mut spawn: impl FnMut(&[u16]) -> Proc,
) -> (Proc, Vec<u16>) {
    for _ in 0..8 {
        let p: Vec<u16> = (0..ports).map(|_| free_port()).collect();
        let mut proc = spawn(&p);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && proc.alive() {
            if listening(p[0]) {
                return (proc, p);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "{what} did not start on {p:?}; retrying on other ports:\n{}",
            proc.log_text()
        );
        proc.kill9();
    }
    panic!("{what} did not start in 8 tries");
}

/// One etcd member with a temporary data directory.
pub struct Etcd {
    proc: Proc,
    /// Its client URL.
    pub url: String,
    /// Its client and peer ports.
    pub ports: Vec<u16>,
    dir: PathBuf,
    also: Option<String>,
}

/// Where `program` is: on the PATH, or in an sbin directory (Debian installs nats-server in
/// /usr/sbin, which is not on a user's PATH unless they are root). Panics with the package to
/// install when it is in neither.
fn need(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed: the cluster tests need it (apt-get install {package})"
            )
        })
}

fn etcd_cmd(dir: &Path, p: &[u16], also: Option<&str>) -> Command {
    let (c, peer) = (p[0], p[1]);
    let mut urls = format!("http://127.0.0.1:{c}");
    if let Some(h) = also {
        urls.push_str(&format!(",http://{h}:{c}"));
    }
    let mut cmd = Command::new(need("etcd", "etcd-server"));
    cmd.args(["--name", "t", "--data-dir"])
        .arg(dir.join("etcd"))
        .args(["--listen-client-urls", &urls])
        .args(["--advertise-client-urls", &format!("http://127.0.0.1:{c}")])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args(["--initial-cluster", &format!("t=http://127.0.0.1:{peer}")]);
    cmd
}

impl Etcd {
    /// Starts etcd under `dir`.
    pub fn start(dir: &Path) -> Etcd {
        Self::start_also_on(dir, None)
    }

    /// Starts etcd under `dir`, serving clients on `also` (an address) too.
    pub fn start_also_on(dir: &Path, also: Option<&str>) -> Etcd {
        let (proc, ports) = start_retrying("etcd", 2, |p| {
            Proc::spawn(etcd_cmd(dir, p, also), dir.join("etcd.log"))
        });
        Etcd {
            proc,
            url: format!("http://127.0.0.1:{}", ports[0]),
            ports,
            dir: dir.to_path_buf(),
            also: also.map(str::to_string),
        }
    }

    /// SIGKILLs it.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// Starts it again on the same ports and data (retrying while the ports are released).
    pub fn restart(&mut self) {
        self.proc.kill9();
        for _ in 0..20 {
            let cmd = etcd_cmd(&self.dir, &self.ports, self.also.as_deref());
            let mut p = Proc::spawn(cmd, self.dir.join("etcd2.log"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && p.alive() {
                if listening(self.ports[0]) {
                    self.proc = p;
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            p.kill9();
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("etcd did not restart on {:?}", self.ports);
    }
}

/// nats-server with JetStream and a temporary store.
pub struct Nats {
    proc: Proc,
    /// Its URL.
    pub url: String,
}

impl Nats {
    /// Starts nats-server under `dir`.
    pub fn start(dir: &Path) -> Nats {
        let program = need("nats-server", "nats-server");
        let (proc, ports) = start_retrying("nats-server", 1, |p| {
            let mut cmd = Command::new(&program);
            cmd.args(["-js", "-sd"]).arg(dir.join("nats")).args([
                "-a",
                "127.0.0.1",
                "-p",
                &p[0].to_string(),
            ]);
            Proc::spawn(cmd, dir.join("nats.log"))
        });
        Nats {
            proc,
            url: format!("nats://127.0.0.1:{}", ports[0]),
        }
    }
}

/// A `sluice worker` that joined through etcd.
pub struct WorkerProc {
    /// The process.
    pub proc: Proc,
    /// Its bound (and advertised) address.
    pub addr: SocketAddr,
    /// Its member id.
    pub id: String,
}

/// The worker's address, from its start line (`sluice worker on http://ADDR: …`).
pub fn bound_addr(log: &str) -> Option<SocketAddr> {
    let rest = log.split("sluice worker on http://").nth(1)?;
    rest.split(':')
        .take(2)
        .collect::<Vec<_>>()
        .join(":")
        .parse()
        .ok()
}

impl WorkerProc {
    /// Starts a worker under `dir/<name>` with simulated GPUs, joining `etcd` with a lease of
    /// `ttl_s`; `extra` is appended to its config's top level.
    pub fn start(dir: &Path, name: &str, etcd: &str, ttl_s: u64, extra: &str) -> WorkerProc {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).expect("worker dir");
        let cfg = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nstart_timeout_ms = 20000\n{extra}\n[gpu]\nforce_simulated = true\n[cluster]\netcd = [\"{etcd}\"]\nlease_ttl_s = {ttl_s}\n",
            home.join("data").display()
        );
        let path = home.join("worker.toml");
        std::fs::write(&path, cfg).expect("worker config");
        let mut cmd = Command::new(super::sluice_bin());
        cmd.args(["worker", "--config"])
            .arg(&path)
            .current_dir(super::repo());
        let mut proc = Proc::spawn(cmd, home.join("worker.log"));
        let mut addr = None;
        wait_for(Duration::from_secs(30), "worker start line", || {
            assert!(proc.alive(), "worker exited: {}", proc.log_text());
            addr = bound_addr(&proc.log_text());
            addr.is_some()
        });
        let addr = addr.expect("worker address");
        let id = addr.to_string().replace(':', "-");
        WorkerProc { proc, addr, id }
    }
}

/// A `sluice router`.
pub struct RouterProc {
    /// The process.
    pub proc: Proc,
    /// Its bound address.
    pub addr: SocketAddr,
}

impl RouterProc {
    /// Starts a router `id` under `dir/<id>`; `extra` is appended to its config (TOML, may
    /// hold tables).
    pub fn start(dir: &Path, id: &str, etcd: &str, nats: Option<&str>, extra: &str) -> RouterProc {
        let home = dir.join(id);
        std::fs::create_dir_all(&home).expect("router dir");
        let nats = nats
            .map(|n| format!("nats = \"{n}\"\n"))
            .unwrap_or_default();
        let cfg = format!(
            "listen = \"127.0.0.1:0\"\netcd = [\"{etcd}\"]\nid = \"{id}\"\n{nats}{extra}\n"
        );
        let path = home.join("router.toml");
        std::fs::write(&path, cfg).expect("router config");
        let addr_file = home.join("addr");
        let mut cmd = Command::new(super::sluice_bin());
        cmd.args(["router", "--config"])
            .arg(&path)
            .arg("--addr-file")
            .arg(&addr_file);
        let mut proc = Proc::spawn(cmd, home.join("router.log"));
        let mut addr = None;
        wait_for(Duration::from_secs(40), "router address file", || {
            assert!(proc.alive(), "router exited: {}", proc.log_text());
            addr = std::fs::read_to_string(&addr_file)
                .ok()
                .and_then(|a| a.trim().parse().ok());
            addr.is_some()
        });
        RouterProc {
            proc,
            addr: addr.expect("router address"),
        }
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> Value {
        json(&call(self.addr, "GET", "/v1/status", None))
    }

    /// How many workers it routes to.
    pub fn workers(&self) -> usize {
        self.status()["workers"].as_array().map_or(0, Vec::len)
    }
}

/// etcd, NATS, workers and routers under one temporary directory.
pub struct Cluster {
    /// Routers (dropped first).
    pub routers: Vec<RouterProc>,
    /// Workers.
    pub workers: Vec<WorkerProc>,
    /// NATS.
    pub nats: Nats,
    /// etcd.
    pub etcd: Etcd,
    /// Everything's files.
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts etcd, NATS, `workers` workers (lease TTL `ttl_s`) and `routers` routers with
    /// `router_extra` config, and waits until every router sees every worker.
    pub fn start(workers: usize, routers: usize, ttl_s: u64, router_extra: &str) -> Cluster {
        let dir = super::tempdir();
        let etcd = Etcd::start(dir.path());
        let nats = Nats::start(dir.path());
        let ws: Vec<WorkerProc> = (0..workers)
            .map(|i| WorkerProc::start(dir.path(), &format!("w{i}"), &etcd.url, ttl_s, ""))
            .collect();
        let rs: Vec<RouterProc> = (0..routers)
            .map(|i| {
                RouterProc::start(
                    dir.path(),
                    &format!("r{i}"),
                    &etcd.url,
                    Some(&nats.url),
                    router_extra,
                )
            })
            .collect();
        for r in &rs {
            wait_for(Duration::from_secs(20), "routers see every worker", || {
                r.workers() == workers
            });
        }
        Cluster {
            routers: rs,
            workers: ws,
            nats,
            etcd,
            dir,
        }
    }

    /// Registers `spec` through router `r`; panics unless 201/200.
    pub fn register(&self, r: usize, spec: &Value) {
        let a = call(
            self.routers[r].addr,
            "POST",
            "/v1/functions",
            Some(&spec.to_string()),
        );
        assert!(a.0 == 201 || a.0 == 200, "register: {a:?}");
    }
}
