//! Write a Sluice function in Rust: [`serve`] a handler over the function protocol.
//!
//! The worker starts the function with `SLUICE_SOCKET=<path>` in its environment; the function serves
//! HTTP/1.1 on that Unix socket:
//! - `GET /ready` → 200 `ok` (as soon as the socket is bound: do slow setup *before* calling [`serve`]);
//! - `POST /invoke` with a JSON body → 200 with the handler's JSON result; 400 `{"error": ...}` when the
//!   body is not JSON; 500 `{"error": ...}` when the handler returns `Err` (or panics).
//!
//! An empty `/invoke` body is passed to the handler as `null`. Other paths get 404, other methods 405;
//! chunked bodies 400, bodies over 64 MiB 413. Each connection runs on its own thread (reused from
//! connection to connection, and the one that accepted it) and may carry many requests
//! (keep-alive), so concurrent invocations run in parallel.
//!
//! This module owns routing; HTTP framing lives in `http`, accepting threads in `pool`.
//!
//! ```no_run
//! fn main() -> std::io::Result<()> {
//!     sluice_fn::serve(|input| Ok(serde_json::json!({ "echo": input })))
//! }
//! ```

mod http;
mod pool;

use serde_json::Value;
use std::io::{self, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

pub use http::MAX_BODY;

/// The environment variable naming the socket to serve on.
pub const SOCKET_ENV: &str = "SLUICE_SOCKET";

/// Serves `handler` on the Unix socket named by `SLUICE_SOCKET`, until the process is killed.
/// Returns an error only when the variable is missing or the socket cannot be bound.
pub fn serve<F>(handler: F) -> io::Result<()>
where
    F: Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
{
    let path = std::env::var_os(SOCKET_ENV).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{SOCKET_ENV} is not set: this program is meant to be started by a Sluice worker"
            ),
        )
    })?;
    serve_at(path, handler)
}

/// Binds `path` (removing a stale file there first) and serves `handler` on it forever.
pub fn serve_at<P, F>(path: P, handler: F) -> io::Result<()>
where
    P: AsRef<Path>,
    F: Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
{
    let path = path.as_ref();
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                e.kind(),
                format!("removing stale {}: {e}", path.display()),
            ))
        }
        _ => {}
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("binding {}: {e}", path.display())))?;
    serve_listener(listener, handler)
}

/// Serves `handler` on an already bound listener forever (accept errors are logged and retried).
pub fn serve_listener<F>(listener: UnixListener, handler: F) -> io::Result<()>
where
    F: Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
{
    let handler: Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync> = Arc::new(handler);
    pool::serve(listener, move |stream: UnixStream| {
        connection(stream, &*handler)
    })
}

/// Serves requests on one connection until the peer closes it or framing breaks.
fn connection(stream: UnixStream, handler: &(dyn Fn(Value) -> Result<Value, String> + Sync)) {
    let mut reader = BufReader::with_capacity(16 << 10, &stream);
    let mut writer = &stream;
    loop {
        let req = match http::read_request(&mut reader, &mut writer) {
            Ok(Some(req)) => req,
            Ok(None) | Err(http::ReadError::Closed) => return,
            Err(http::ReadError::Bad(status, msg)) => {
                let _ = http::write_response(&mut writer, status, JSON, &error_body(msg), false);
                return;
            }
        };
        let (status, ctype, body) = route(&req, handler);
        if http::write_response(&mut writer, status, ctype, &body, req.keep_alive).is_err()
            || !req.keep_alive
        {
            return;
        }
    }
}

const JSON: &str = "application/json";

fn error_body(msg: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": msg }))
        .unwrap_or_else(|_| b"{\"error\":\"unprintable error\"}".to_vec())
}

fn route(
    req: &http::Request,
    handler: &(dyn Fn(Value) -> Result<Value, String> + Sync),
) -> (u16, &'static str, Vec<u8>) {
    match (req.path.as_str(), req.method.as_str()) {
        ("/ready", "GET") => (200, "text/plain", b"ok".to_vec()),
        ("/invoke", "POST") => invoke(&req.body, handler),
        ("/ready", _) | ("/invoke", _) => (405, JSON, error_body("method not allowed")),
        _ => (404, JSON, error_body("not found")),
    }
}

fn invoke(
    body: &[u8],
    handler: &(dyn Fn(Value) -> Result<Value, String> + Sync),
) -> (u16, &'static str, Vec<u8>) {
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return (400, JSON, error_body(&format!("invalid JSON body: {e}"))),
        }
    };
    match catch_unwind(AssertUnwindSafe(|| handler(input))) {
        Ok(Ok(out)) => match serde_json::to_vec(&out) {
            Ok(bytes) => (200, JSON, bytes),
            Err(e) => (
                500,
                JSON,
                error_body(&format!("serialising the result: {e}")),
            ),
        },
        Ok(Err(msg)) => (500, JSON, error_body(&msg)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            (500, JSON, error_body(&format!("handler panicked: {msg}")))
        }
    }
}
