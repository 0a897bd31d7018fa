//! Serving the API over HTTP/1.1 with hyper's connection builder (not `axum::serve`, which has
//! no timeouts and no cap), so no client can hold the worker's connections or descriptors:
//!
//! - **header/idle timeout**: hyper's `header_read_timeout` starts when a connection opens and
//!   again as soon as it is idle after a response, so a connection that does not deliver a
//!   complete request head in time — idle keep-alive and slow-loris head alike — is closed;
//! - **body timeout and limits**: in the API's body layer (`api::body`);
//! - **connection cap**: at `max_connections` a new connection closes the longest-open *idle*
//!   one (no request in flight; a slow head counts as idle), so an idle flood cannot lock out
//!   `/healthz` or real clients; only when every connection is busy is the newcomer answered
//!   503 and closed — never left hanging in the backlog;
//! - **graceful stop**: accepting stops, every connection finishes its request in flight and
//!   closes, for at most the grace period.

use axum::Router;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// How connections are served.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// How long a graceful stop waits for connections to finish.
    pub grace: Duration,
}

/// Most over-cap refusals being written at once; beyond this a newcomer is closed at once.
const MAX_REFUSING: usize = 64;

/// The answer to a connection over the cap when no idle one can make room.
const REFUSAL: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
    retry-after: 1\r\nconnection: close\r\ncontent-length: 91\r\n\r\n\
    {\"error\":{\"code\":\"too_many_connections\",\"message\":\"every connection is busy; retry later\"}}";

/// One open connection: requests in flight, and how to ask it to close.
struct Conn {
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

/// Open connections by id; ids grow, so the first idle one is the longest open.
#[derive(Default)]
struct Registry {
    next: u64,
    open: BTreeMap<u64, Conn>,
}

impl Registry {
    /// Makes room for one more connection under `cap`, closing the longest-open idle one if
    /// needed; false if every connection is busy.
    fn make_room(&mut self, cap: usize) -> bool {
        if self.open.len() < cap {
            return true;
        }
        let idle = self
            .open
            .iter()
            .find(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
            .map(|(&id, _)| id);
        match idle.and_then(|id| self.open.remove(&id)) {
            Some(evicted) => {
                evicted.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops gracefully.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let service = TowerToHyperService::new(app);
    let refusing = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or memory: back off instead of spinning.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = {
            let mut reg = lock(&registry);
            if reg.make_room(limits.max_connections) {
                let id = reg.next;
                reg.next += 1;
                let conn = Conn {
                    busy: Arc::new(AtomicUsize::new(0)),
                    close: Arc::new(Notify::new()),
                };
                let handles = (conn.busy.clone(), conn.close.clone());
                reg.open.insert(id, conn);
                Some((id, handles))
            } else {
                None
            }
        };
        match conn {
            Some((id, (busy, close))) => {
                let served = Served {
                    inner: service.clone(),
                    busy,
                };
                let registry = registry.clone();
                tasks.spawn(async move {
                    connection(stream, served, close, limits).await;
                    lock(&registry).open.remove(&id);
                });
            }
            None if refusing.load(Ordering::Acquire) < MAX_REFUSING => {
                let refusing = refusing.clone();
                refusing.fetch_add(1, Ordering::AcqRel);
                tasks.spawn(async move {
                    refuse(stream).await;
                    refusing.fetch_sub(1, Ordering::AcqRel);
                });
            }
            None => drop(stream),
        }
    }
    drop(listener);
    for conn in lock(&registry).open.values() {
        conn.close.notify_one();
    }
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.grace, all).await.is_err() {
        tracing::warn!("connections still open after the grace period are closed");
        tasks.abort_all();
    }
}

fn lock(registry: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves one connection until it ends or is asked to close; then it finishes the request in
/// flight, if any, and closes.
async fn connection(stream: TcpStream, served: Served, close: Arc<Notify>, limits: Limits) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), served);
    tokio::pin!(conn);
    tokio::select! {
        ended = conn.as_mut() => {
            if let Err(e) = ended {
                tracing::debug!("connection ended: {e}");
            }
        }
        _ = close.notified() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.grace, conn).await;
        }
    }
}

/// Answers a connection over the cap with 503 and closes it (reading a little of its request
/// first, so the close does not reset the answer away).
async fn refuse(mut stream: TcpStream) {
    let answer = async {
        stream.write_all(REFUSAL.as_bytes()).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

/// The API as one connection's hyper service, counting its requests in flight (from the
/// request until the response body is sent) so the cap knows which connections are idle.
#[derive(Clone)]
struct Served {
    inner: TowerToHyperService<Router>,
    busy: Arc<AtomicUsize>,
}

impl Service<Request<Incoming>> for Served {
    type Response = Response<Tracked>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::enter(&self.busy);
        let answer = self.inner.call(req);
        Box::pin(async move {
            let resp = answer.await?;
            Ok(resp.map(|body| Tracked {
                body,
                _in_flight: guard,
            }))
        })
    }
}

/// One request in flight on a connection.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(busy: &Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        InFlight(busy.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight until hyper has sent it.
struct Tracked {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(busy: usize) -> Conn {
        Conn {
            busy: Arc::new(AtomicUsize::new(busy)),
            close: Arc::new(Notify::new()),
        }
    }

    #[test]
    fn at_the_cap_the_longest_open_idle_connection_makes_room() {
        let mut reg = Registry::default();
        for (id, busy) in [(0, 1), (1, 0), (2, 0)] {
            reg.open.insert(id, conn(busy));
        }
        assert!(reg.make_room(4), "under the cap");
        assert_eq!(reg.open.len(), 3);
        assert!(reg.make_room(3));
        assert_eq!(reg.open.keys().copied().collect::<Vec<_>>(), [0, 2]);
        if let Some(c) = reg.open.get(&2) {
            c.busy.store(1, Ordering::Release);
        }
        assert!(!reg.make_room(2), "every connection busy: refuse");
        assert_eq!(reg.open.len(), 2);
    }

    #[test]
    fn the_refusal_is_well_formed() {
        let (head, body) = REFUSAL.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }
}
