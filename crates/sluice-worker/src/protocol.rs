//! Client side of the function protocol: the contract every function implements, in any language.
//!
//! The worker passes `SLUICE_SOCKET=<path>`; the function serves HTTP/1.1 on that Unix socket:
//! `GET /ready` answers 200 once it can take work, `POST /invoke` takes a JSON body and answers 200
//! with a JSON body (the result) or a non-2xx status with a body describing the error.
//!
//! [`FunctionClient`] opens one connection per call (Unix connects cost microseconds, and a
//! connection per call can never starve a single-threaded function server the way an idle pooled
//! keep-alive connection can). Response bodies are read frame by frame against a limit, so a huge
//! response is refused without being buffered.

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::{header, Method, Request, Response};
use hyper_util::rt::TokioIo;
use std::future::{poll_fn, Future};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::time::{sleep, timeout_at, Instant};

/// How much of an error response's body is kept.
pub const ERROR_BODY_LIMIT: usize = 4096;
/// Largest `/ready` body read (it is discarded).
const READY_BODY_LIMIT: usize = 64 * 1024;

/// Why a call to a function failed.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The socket does not exist yet or nobody accepts on it.
    #[error("cannot connect to the function's socket: {0}")]
    Connect(#[source] io::Error),
    /// The connection failed after it was made (the function closed it, died, or spoke no HTTP).
    #[error("talking to the function failed: {0}")]
    Io(#[source] io::Error),
    /// The function answered with a non-2xx status.
    #[error("the function answered {status}: {body}")]
    Status {
        /// The HTTP status it answered.
        status: u16,
        /// The start of the response body (at most [`ERROR_BODY_LIMIT`] bytes), as text (invalid
        /// UTF-8 replaced).
        body: String,
    },
    /// The response body is larger than the caller accepts.
    #[error("the function's response is larger than {limit} bytes")]
    TooLarge {
        /// The caller's limit, bytes.
        limit: usize,
    },
    /// `/ready` did not answer 200 within the start timeout.
    #[error("the function was not ready within {0:?}")]
    NotReady(Duration),
    /// The request could not be built (never expected).
    #[error("bad request: {0}")]
    Request(String),
}

fn transport(e: hyper::Error) -> ProtocolError {
    ProtocolError::Io(io::Error::other(e))
}

/// Talks to one function over its Unix socket. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FunctionClient {
    socket: PathBuf,
}

impl FunctionClient {
    /// A client of the function serving on `socket` (its `SLUICE_SOCKET`); connects on each
    /// call, not now.
    pub fn new(socket: PathBuf) -> Self {
        FunctionClient { socket }
    }

    /// The socket this client connects to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// One `GET /ready`: `Ok(true)` on 2xx, `Ok(false)` on any other status.
    pub async fn ready(&self) -> Result<bool, ProtocolError> {
        self.call(Method::GET, "/ready", "", Bytes::new(), |resp| async move {
            let ok = resp.status().is_success();
            // Drain (bounded) so the function sees a clean close; the content does not matter.
            let _ = read_limited(resp.into_body(), READY_BODY_LIMIT).await;
            Ok(ok)
        })
        .await
    }

    /// Polls `/ready` (every 5 ms, backing off to 50 ms) until it answers 200; a missing socket or
    /// a refused connection just means "not yet". Fails with [`ProtocolError::NotReady`].
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), ProtocolError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Ok(Ok(true)) = timeout_at(deadline, self.ready()).await {
                return Ok(());
            }
            if Instant::now() + pause >= deadline {
                return Err(ProtocolError::NotReady(timeout));
            }
            sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// `POST /invoke` with a JSON body; returns the 2xx response's body. A body (or a declared
    /// length) over `max_response` bytes fails with [`ProtocolError::TooLarge`] as soon as it is
    /// seen; a non-2xx status gives [`ProtocolError::Status`] with the first 4 KiB of the body.
    pub async fn invoke(&self, body: Bytes, max_response: usize) -> Result<Bytes, ProtocolError> {
        self.post("/invoke", "application/json", body, max_response)
            .await
    }

    /// `POST /batch` of the stage protocol (a batch frame, see `sluice_handoff::frame`); returns
    /// the 2xx response's frame, with the same limits and errors as [`FunctionClient::invoke`].
    pub async fn batch(&self, frame: Bytes, max_response: usize) -> Result<Bytes, ProtocolError> {
        self.post(
            "/batch",
            sluice_handoff::frame::CONTENT_TYPE,
            frame,
            max_response,
        )
        .await
    }

    /// `POST /release` of the stage protocol: asks a stage to free the device buffers it exported
    /// under `handles` (JSON `{"release":[..]}`); any 2xx answer is success.
    pub async fn release(
        &self,
        handles: &[sluice_handoff::cuda_ipc::IpcHandle],
    ) -> Result<(), ProtocolError> {
        let body = sluice_handoff::frame::ReleaseRequest {
            release: handles.to_vec(),
        };
        let json = serde_json::to_vec(&body).map_err(|e| ProtocolError::Request(e.to_string()))?;
        self.post(
            sluice_handoff::frame::RELEASE_PATH,
            "application/json",
            Bytes::from(json),
            READY_BODY_LIMIT,
        )
        .await
        .map(drop)
    }

    async fn post(
        &self,
        path: &str,
        content_type: &'static str,
        body: Bytes,
        max_response: usize,
    ) -> Result<Bytes, ProtocolError> {
        self.call(Method::POST, path, content_type, body, |resp| async move {
            let status = resp.status();
            if !status.is_success() {
                let body = read_prefix(resp.into_body(), ERROR_BODY_LIMIT).await;
                return Err(ProtocolError::Status {
                    status: status.as_u16(),
                    body,
                });
            }
            read_limited(resp.into_body(), max_response).await
        })
        .await
    }

    /// Sends one request on a new connection and hands the response to `read`. The connection
    /// is driven in this task, not a spawned one (no task and no cross-task wake-ups per call);
    /// it is closed when `read` is done (the request asks for `Connection: close`).
    async fn call<T, F, Fut>(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        body: Bytes,
        read: F,
    ) -> Result<T, ProtocolError>
    where
        F: FnOnce(Response<Incoming>) -> Fut,
        Fut: Future<Output = Result<T, ProtocolError>>,
    {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(ProtocolError::Connect)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(transport)?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost")
            .header(header::CONNECTION, "close");
        if !body.is_empty() {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| ProtocolError::Request(e.to_string()))?;
        let exchange = async move {
            let resp = sender.send_request(req).await.map_err(transport)?;
            read(resp).await
        };
        let mut exchange = pin!(exchange);
        let mut conn = pin!(conn);
        let mut conn_ended = false;
        // The connection ending (or failing) makes the exchange fail or finish, so polling the
        // exchange after it never waits forever.
        poll_fn(|cx| {
            if !conn_ended {
                conn_ended = conn.as_mut().poll(cx).is_ready();
            }
            exchange.as_mut().poll(cx)
        })
        .await
    }
}

/// Reads a whole body, failing as soon as it is known to exceed `limit`.
async fn read_limited(mut body: Incoming, limit: usize) -> Result<Bytes, ProtocolError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(ProtocolError::TooLarge { limit });
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(transport)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ProtocolError::TooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// The first `limit` bytes of a body as text (lossy); read errors just end it.
async fn read_prefix(mut body: Incoming, limit: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    truncate_text(&buf, limit)
}

/// `bytes` as text, cut to at most `limit` bytes (lossy UTF-8, no split characters).
fn truncate_text(bytes: &[u8], limit: usize) -> String {
    let mut s = String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned();
    while s.len() > limit {
        s.pop();
    }
    s.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_is_cut_to_the_limit() {
        let long = "é".repeat(3000);
        let t = truncate_text(long.as_bytes(), ERROR_BODY_LIMIT);
        assert!(t.len() <= ERROR_BODY_LIMIT);
        assert!(t.chars().all(|c| c == 'é' || c == '\u{fffd}'));
        assert_eq!(truncate_text(b"oops\n", 10), "oops");
    }

    /// The connection is driven by the call itself: a function that answers and then keeps
    /// the connection open (ignoring `Connection: close`) must not hold the call up.
    #[tokio::test]
    async fn an_answer_ends_the_call_even_if_the_function_keeps_the_connection() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.expect("read");
                got.extend_from_slice(&buf[..n]);
            }
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{\"a\":1}";
            s.write_all(answer.as_bytes()).await.expect("write");
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let c = FunctionClient::new(path);
        let body = Bytes::from_static(b"{}");
        let got = tokio::time::timeout(Duration::from_secs(5), c.invoke(body, 1024)).await;
        assert_eq!(got.expect("answered in time").expect("ok"), "{\"a\":1}");
        server.abort();
    }

    #[tokio::test]
    async fn missing_socket_is_a_connect_error_and_never_ready() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = FunctionClient::new(dir.path().join("none.sock"));
        assert!(matches!(c.ready().await, Err(ProtocolError::Connect(_))));
        let t = Duration::from_millis(60);
        let r = c.wait_ready(t).await;
        assert!(matches!(r, Err(ProtocolError::NotReady(d)) if d == t));
    }
}
