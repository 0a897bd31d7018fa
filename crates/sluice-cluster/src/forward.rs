//! Calls from a router to a worker: one keep-alive HTTP/1.1 client (connection pool, no
//! Nagle), carrying the cluster token. A failure says whether the request reached the worker:
//! [`ForwardError::NotSent`] (the connection failed before anything was written, so the
//! function cannot have run and the call may go to another worker) or [`ForwardError::Lost`]
//! (sent, but no answer: the function may have run, so it must not be repeated silently).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderValue;
use hyper::{header, HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Why a call to a worker produced no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    /// The connection failed before the request was sent.
    #[error("cannot connect to worker {addr}: {message}")]
    NotSent {
        /// The worker's address.
        addr: String,
        /// What failed.
        message: String,
    },
    /// The request was sent (or may have been), and no answer came.
    #[error("worker {addr} was lost during the request: {message}")]
    Lost {
        /// The worker's address.
        addr: String,
        /// What failed.
        message: String,
    },
}

/// A worker's answer.
#[derive(Debug)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

/// The router's client for workers; cheap to clone.
#[derive(Clone)]
pub struct WorkerClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `Bearer <cluster token>`, built once (or why the token is no header value).
    auth: Option<Result<HeaderValue, String>>,
}

impl WorkerClient {
    /// A client sending `token` (the cluster token) as a bearer token, if set.
    pub fn new(token: Option<String>) -> WorkerClient {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(http);
        let auth =
            token.map(|t| HeaderValue::try_from(format!("Bearer {t}")).map_err(|e| e.to_string()));
        WorkerClient { client, auth }
    }

    /// Sends `method path` with `body` to the worker at `addr`, waiting at most `limit`.
    pub async fn call(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
        limit: Duration,
    ) -> Result<Reply, ForwardError> {
        let not_sent = |message: String| ForwardError::NotSent {
            addr: addr.to_string(),
            message,
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some(auth) = &self.auth {
            req = req.header(header::AUTHORIZATION, auth.clone().map_err(not_sent)?);
        }
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| not_sent(e.to_string()))?;
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| {
                let message = e.to_string();
                if e.is_connect() {
                    ForwardError::NotSent {
                        addr: addr.to_string(),
                        message,
                    }
                } else {
                    ForwardError::Lost {
                        addr: addr.to_string(),
                        message,
                    }
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| ForwardError::Lost {
                    addr: addr.to_string(),
                    message: e.to_string(),
                })?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(ForwardError::Lost {
                addr: addr.to_string(),
                message: format!("no answer within {limit:?}"),
            })
        })
    }

    /// `GET path` on the worker, parsed as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        limit: Duration,
    ) -> Result<T, String> {
        let r = self
            .call(addr, Method::GET, path, Bytes::new(), None, limit)
            .await
            .map_err(|e| e.to_string())?;
        if !r.status.is_success() {
            return Err(format!("{path} on {addr}: {}", r.status));
        }
        serde_json::from_slice(&r.body).map_err(|e| format!("{path} on {addr}: {e}"))
    }
}
