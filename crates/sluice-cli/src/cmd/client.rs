//! A small HTTP client for the worker's API, shared by the management commands and `sluice load`.

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::{header, Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// Where the worker is.
#[derive(Args, Debug, Clone)]
pub struct Endpoint {
    /// The worker's base URL.
    #[arg(
        long,
        env = "SLUICE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Bearer token, if the worker requires one.
    #[arg(long, env = "SLUICE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

/// An answer from the worker.
pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Fails with the worker's error message unless the status is a success.
    pub fn ok(self) -> Result<Answer> {
        if self.status.is_success() {
            return Ok(self);
        }
        let msg = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.text());
        anyhow::bail!("{}: {msg}", self.status)
    }
}

/// A keep-alive HTTP/1.1 client bound to one worker.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    pub fn new(ep: &Endpoint) -> Api {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Api {
            base: ep.url.trim_end_matches('/').to_string(),
            token: ep.token.clone(),
            client: Client::builder(TokioExecutor::new()).build(http),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Bytes>) -> Result<Answer> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let resp = self
            .client
            .request(req)
            .await
            .with_context(|| format!("cannot reach the worker at {}", self.base))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
