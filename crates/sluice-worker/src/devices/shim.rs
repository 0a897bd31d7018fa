//! The worker's side of the managed-memory shim (`crates/sluice-shim`, preloaded into GPU
//! sandboxes): where its library is, and [`ShimControl`], an async client of the control socket
//! in a sandbox's directory. One request per connection, one reply line, each bounded by a
//! timeout. The protocol (`PREFETCH`, `ADVISE`, `STATS`; `OK key=value…` or `ERR message`) is
//! documented in `docs/gpu.md`.

use sluice_policy::memory::Location;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The socket's name in the sandbox directory.
pub const SOCKET_NAME: &str = "shim.sock";
/// The shim library's file name.
pub const LIBRARY_NAME: &str = "libsluice_shim.so";
/// Long enough for a prefetch of tens of GB over PCIe.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest reply read.
const MAX_REPLY: u64 = 4096;

/// The shim library: `configured` if given, else `libsluice_shim.so` beside the running
/// executable; `None` if that file does not exist.
pub fn locate_library(configured: Option<&Path>) -> Option<PathBuf> {
    let path = match configured {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe().ok()?.with_file_name(LIBRARY_NAME),
    };
    path.is_file().then_some(path)
}

/// A failed control request.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// Connecting to the socket, or the exchange on it, failed (e.g. no socket: the sandbox
    /// never used CUDA, or it has exited).
    #[error("shim socket {path}: {source}")]
    Io {
        /// The control socket's path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No reply line within the client's timeout.
    #[error("the shim did not answer {command:?} within {timeout:?}")]
    Timeout {
        /// The request line sent, without its newline.
        command: String,
        /// The client's timeout.
        timeout: Duration,
    },
    /// The shim answered `ERR <message>`.
    #[error("the shim refused {command:?}: {message}")]
    Refused {
        /// The request line sent, without its newline.
        command: String,
        /// The shim's message after `ERR `.
        message: String,
    },
    /// A reply that is neither `ERR …` nor `OK` with the expected `key=value` fields; the
    /// reply line as read.
    #[error("malformed shim reply {0:?}")]
    Malformed(String),
}

/// What a prefetch or advice covered.
#[derive(Clone, Debug, PartialEq)]
pub struct Covered {
    /// Total size of the managed allocations covered, bytes.
    pub bytes: u64,
    /// How many managed allocations were covered.
    pub count: u64,
    /// Wall time of a prefetch inside the shim (issue and synchronise), in milliseconds.
    pub ms: Option<f64>,
}

/// The shim's accounting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShimStats {
    /// Bytes of all the process's live device allocations made through the shim, managed or
    /// not; what the budget is charged.
    pub bytes: u64,
    /// Number of those live allocations.
    pub count: u64,
    /// Bytes of the managed ones among them (≤ `bytes`): what `PREFETCH` and `ADVISE` can move.
    pub managed_bytes: u64,
    /// The memory budget the shim reports to the process, bytes (`SLUICE_SHIM_BUDGET_BYTES`,
    /// the function's `gpu_memory_mb`); `None` when unset and the driver's figures pass through.
    pub budget: Option<u64>,
}

/// A client of one sandbox's shim.
#[derive(Clone, Debug)]
pub struct ShimControl {
    socket: PathBuf,
    timeout: Duration,
}

fn target(to: Location) -> &'static str {
    match to {
        Location::Device => "device",
        Location::Host => "host",
    }
}

impl ShimControl {
    /// A client of the shim serving `socket`, each request bounded by `timeout`; connects per
    /// request, not now.
    pub fn new(socket: PathBuf, timeout: Duration) -> Self {
        ShimControl { socket, timeout }
    }

    /// The shim of the sandbox whose directory is `dir`.
    pub fn for_sandbox(dir: &Path) -> Self {
        Self::new(dir.join(SOCKET_NAME), DEFAULT_TIMEOUT)
    }

    /// Whether the shim serves its socket: it starts at the process's first device
    /// allocation, so a sandbox that never used CUDA has none.
    pub fn is_serving(&self) -> bool {
        self.socket.exists()
    }

    /// Prefetches every managed allocation of the sandbox to `to`; returns once it is there.
    pub async fn prefetch(&self, to: Location) -> Result<Covered, ShimError> {
        self.covered(&format!("PREFETCH {}", target(to))).await
    }

    /// Sets the preferred location of every managed allocation to `to`.
    pub async fn advise(&self, to: Location) -> Result<Covered, ShimError> {
        self.covered(&format!("ADVISE {}", target(to))).await
    }

    /// The bytes and allocations the shim has recorded.
    pub async fn stats(&self) -> Result<ShimStats, ShimError> {
        let line = self.request("STATS").await?;
        let kv = fields(&line)?;
        let budget = match kv.get("budget") {
            Some(&"none") | None => None,
            Some(v) => Some(v.parse().map_err(|_| ShimError::Malformed(line.clone()))?),
        };
        Ok(ShimStats {
            bytes: number(&kv, "bytes", &line)?,
            count: number(&kv, "count", &line)?,
            managed_bytes: number(&kv, "managed_bytes", &line)?,
            budget,
        })
    }

    async fn covered(&self, command: &str) -> Result<Covered, ShimError> {
        let line = self.request(command).await?;
        let kv = fields(&line)?;
        Ok(Covered {
            bytes: number(&kv, "bytes", &line)?,
            count: number(&kv, "count", &line)?,
            ms: kv.get("ms").and_then(|v| v.parse().ok()),
        })
    }

    /// Sends `command` and returns the `OK` reply line.
    async fn request(&self, command: &str) -> Result<String, ShimError> {
        let io = |source| ShimError::Io {
            path: self.socket.display().to_string(),
            source,
        };
        let exchange = async {
            let mut s = UnixStream::connect(&self.socket).await.map_err(io)?;
            s.write_all(format!("{command}\n").as_bytes())
                .await
                .map_err(io)?;
            let mut line = String::new();
            BufReader::new(s)
                .take(MAX_REPLY)
                .read_line(&mut line)
                .await
                .map_err(io)?;
            Ok(line.trim_end().to_string())
        };
        let line = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ShimError::Timeout {
                command: command.to_string(),
                timeout: self.timeout,
            })??;
        if let Some(message) = line.strip_prefix("ERR ") {
            return Err(ShimError::Refused {
                command: command.to_string(),
                message: message.to_string(),
            });
        }
        if line != "OK" && !line.starts_with("OK ") {
            return Err(ShimError::Malformed(line));
        }
        Ok(line)
    }
}

fn fields(line: &str) -> Result<HashMap<&str, &str>, ShimError> {
    line.split_whitespace()
        .skip(1)
        .map(|w| {
            w.split_once('=')
                .ok_or_else(|| ShimError::Malformed(line.to_string()))
        })
        .collect()
}

fn number(kv: &HashMap<&str, &str>, key: &str, line: &str) -> Result<u64, ShimError> {
    kv.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ShimError::Malformed(line.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    /// A stand-in shim that answers each connection's request from `replies` and records it.
    fn serve(dir: &Path, replies: Vec<&'static str>) -> tokio::task::JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(dir.join(SOCKET_NAME)).unwrap();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for reply in replies {
                let (s, _) = listener.accept().await.unwrap();
                let mut r = BufReader::new(s);
                let mut line = String::new();
                r.read_line(&mut line).await.unwrap();
                seen.push(line.trim_end().to_string());
                if !reply.is_empty() {
                    r.get_mut()
                        .write_all(format!("{reply}\n").as_bytes())
                        .await
                        .unwrap();
                } else {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
            seen
        })
    }

    #[tokio::test]
    async fn sends_the_commands_and_parses_the_replies() {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(
            dir.path(),
            vec![
                "OK bytes=4096 count=2 ms=1.250",
                "OK bytes=4096 count=2",
                "OK bytes=5000 count=3 managed_bytes=4096 budget=1048576",
                "ERR cuMemPrefetchAsync failed with CUDA error 1",
                "hello",
            ],
        );
        let shim = ShimControl::for_sandbox(dir.path());
        assert!(shim.is_serving());
        let moved = shim.prefetch(Location::Host).await.unwrap();
        assert_eq!(
            moved,
            Covered {
                bytes: 4096,
                count: 2,
                ms: Some(1.25)
            }
        );
        assert_eq!(shim.advise(Location::Device).await.unwrap().ms, None);
        let stats = shim.stats().await.unwrap();
        assert_eq!(
            stats,
            ShimStats {
                bytes: 5000,
                count: 3,
                managed_bytes: 4096,
                budget: Some(1 << 20)
            }
        );
        let e = shim.prefetch(Location::Device).await.unwrap_err();
        assert!(matches!(e, ShimError::Refused { .. }), "{e}");
        assert!(matches!(shim.stats().await, Err(ShimError::Malformed(_))));
        let seen = server.await.unwrap();
        assert_eq!(
            seen,
            [
                "PREFETCH host",
                "ADVISE device",
                "STATS",
                "PREFETCH device",
                "STATS"
            ]
        );
    }

    #[tokio::test]
    async fn a_silent_shim_times_out_and_a_missing_one_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = ShimControl::for_sandbox(dir.path());
        assert!(!missing.is_serving());
        assert!(matches!(missing.stats().await, Err(ShimError::Io { .. })));
        let _server = serve(dir.path(), vec![""]);
        let shim = ShimControl::new(dir.path().join(SOCKET_NAME), Duration::from_millis(100));
        assert!(matches!(
            shim.prefetch(Location::Host).await,
            Err(ShimError::Timeout { .. })
        ));
    }

    #[test]
    fn the_library_is_found_only_where_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join(LIBRARY_NAME);
        assert_eq!(locate_library(Some(&lib)), None);
        std::fs::write(&lib, b"").unwrap();
        assert_eq!(locate_library(Some(&lib)), Some(lib));
    }
}
