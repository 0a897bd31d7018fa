//! The control socket: bound at the first interposed allocation (never at load time), served by
//! one background thread, one connection at a time, one request line → one reply line (see
//! [`crate::protocol`]). The socket file is removed at exit. A socket path already served by a
//! live process (a second CUDA process in the same sandbox) is left to it.

use crate::mover::Mover;
use crate::protocol::{self, Command, Reply};
use crate::state::State;
use std::ffi::CString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Once, OnceLock};
use std::time::Duration;

/// Longest request line read.
const MAX_LINE: u64 = 4096;
/// A connection that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(60);

static START: Once = Once::new();
static BOUND: OnceLock<CString> = OnceLock::new();

/// Starts serving `SLUICE_SHIM_SOCKET`, once per process; does nothing without it.
pub fn ensure_started(state: &'static State) {
    START.call_once(|| {
        let Some(path) = state.socket() else {
            return;
        };
        match bind(path) {
            Ok(listener) => {
                if let Ok(c) = CString::new(path.as_os_str().as_bytes()) {
                    if BOUND.set(c).is_ok() {
                        // SAFETY: registers a plain extern "C" function.
                        unsafe { libc::atexit(remove_socket) };
                    }
                }
                let spawned = std::thread::Builder::new()
                    .name("sluice-shim".into())
                    .spawn(move || serve(listener, state));
                if let Err(e) = spawned {
                    eprintln!("sluice-shim: cannot start the control thread: {e}");
                }
            }
            Err(e) => eprintln!("sluice-shim: control socket {}: {e}", path.display()),
        }
    });
}

/// Binds `path`, replacing a stale socket file that nobody serves.
fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match UnixListener::bind(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Err(e);
            }
            std::fs::remove_file(path)?;
            UnixListener::bind(path)
        }
        r => r,
    }
}

extern "C" fn remove_socket() {
    if let Some(p) = BOUND.get() {
        // SAFETY: a NUL-terminated path.
        unsafe { libc::unlink(p.as_ptr()) };
    }
}

fn serve(listener: UnixListener, state: &'static State) {
    let mut mover = Mover::default();
    for conn in listener.incoming().flatten() {
        // A broken connection only ends that connection.
        let _ = handle(conn, &mut mover, state);
    }
}

fn handle(conn: UnixStream, mover: &mut Mover, state: &State) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IDLE))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.by_ref().take(MAX_LINE).read_line(&mut line)? == 0 {
            return Ok(());
        }
        let reply = respond(&line, mover, state);
        writeln!(writer, "{reply}")?;
    }
}

/// The reply to one request line.
pub fn respond(line: &str, mover: &mut Mover, state: &State) -> Reply {
    let command = match protocol::parse(line) {
        Ok(c) => c,
        Err(e) => return Reply::Error(e.to_string()),
    };
    let driver = crate::driver::get()
        .ok_or_else(|| format!("{} is not loaded", crate::driver::LIBRARY.to_string_lossy()));
    let done = match (command, driver) {
        (Command::Stats, _) => {
            let t = state.registry().totals();
            return Reply::Stats {
                bytes: t.bytes,
                count: t.count,
                managed_bytes: t.managed_bytes,
                budget: state.budget(),
            };
        }
        (_, Err(e)) => return Reply::Error(e),
        (Command::Prefetch(t), Ok(d)) => mover.prefetch(d, state, t).map(|m| Reply::Moved {
            bytes: m.bytes,
            count: m.count,
            ms: m.elapsed.as_secs_f64() * 1e3,
        }),
        (Command::Advise(t), Ok(d)) => mover.advise(d, state, t).map(|m| Reply::Advised {
            bytes: m.bytes,
            count: m.count,
        }),
    };
    done.unwrap_or_else(|e| Reply::Error(e.to_string()))
}
