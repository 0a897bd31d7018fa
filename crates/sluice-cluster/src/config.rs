//! The router's configuration file, with embedded defaults (`config/router.toml`). Unknown
//! keys are errors; [`RouterConfig::validate`] checks what serde cannot.

use crate::balance::RoutingConfig;
use crate::queue::QueueConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../../../config/router.toml");

/// The elected pipeline controller's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerConfig {
    /// Whether this router stands for election.
    pub enabled: bool,
    /// How often the leader re-plans, ms.
    pub interval_ms: u64,
    /// The leader's lease TTL, s: another router takes over within it.
    pub lease_ttl_s: u64,
    /// Add a replica when measured load exceeds this share of the replicas' capacity.
    pub scale_up_at: f64,
    /// Remove one when the load would stay below this share with one fewer.
    pub scale_down_at: f64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            enabled: true,
            interval_ms: 2000,
            lease_ttl_s: 10,
            scale_up_at: 0.8,
            scale_down_at: 0.5,
        }
    }
}

/// The whole router configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// HTTP API address.
    pub listen: SocketAddr,
    /// etcd endpoints.
    pub etcd: Vec<String>,
    /// NATS URL (asynchronous invocations); none: they are refused.
    pub nats: Option<String>,
    /// This router's id (default: host name and process id).
    pub id: Option<String>,
    /// Bearer token clients must send, if set.
    pub auth_token: Option<String>,
    /// Bearer token sent to workers (their `auth_token`), if set.
    pub cluster_token: Option<String>,
    /// Requests larger than this get 413.
    pub max_body_bytes: usize,
    /// Added to a function's own timeout for queueing when waiting for a worker's answer, s.
    pub queue_allowance_s: u64,
    /// How often workers' `GET /v1/load` is polled, ms.
    pub load_poll_ms: u64,
    /// Asynchronous invocations (JetStream).
    #[serde(rename = "async")]
    pub queue: QueueConfig,
    /// Routing (the placement policy's parameters).
    pub routing: RoutingConfig,
    /// The pipeline controller.
    pub controller: ControllerConfig,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            etcd: vec!["http://127.0.0.1:2379".into()],
            nats: None,
            id: None,
            auth_token: None,
            cluster_token: None,
            max_body_bytes: 8 << 20,
            queue_allowance_s: 300,
            load_poll_ms: 500,
            queue: QueueConfig::default(),
            routing: RoutingConfig::default(),
            controller: ControllerConfig::default(),
        }
    }
}

/// A configuration that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It does not parse or validate.
    #[error("invalid config {origin}: {message}")]
    Invalid {
        /// Which text.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

impl RouterConfig {
    /// The embedded defaults.
    pub fn embedded() -> Result<Self, ConfigError> {
        Self::parse(DEFAULT_TOML, "(embedded)")
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let cfg: RouterConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
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

    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() && self.auth_token.as_deref().is_none_or(str::is_empty) {
            return Err(format!(
                "listen = {} is not a loopback address: set auth_token",
                self.listen
            ));
        }
        if self.etcd.is_empty() {
            return Err("etcd: at least one endpoint is needed".into());
        }
        if self.max_body_bytes == 0 || self.load_poll_ms == 0 {
            return Err("max_body_bytes and load_poll_ms must be positive".into());
        }
        let c = &self.controller;
        if c.interval_ms == 0 || !(2..=600).contains(&c.lease_ttl_s) {
            return Err("controller.interval_ms must be positive, lease_ttl_s in 2..=600".into());
        }
        if !(0.0 < c.scale_down_at && c.scale_down_at < c.scale_up_at && c.scale_up_at <= 1.0) {
            return Err("need 0 < controller.scale_down_at < scale_up_at <= 1".into());
        }
        self.routing.validate()?;
        self.queue.validate()
    }

    /// The router id: configured, or `<host name>-<pid>`.
    pub fn router_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "router".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse_and_typos_fail() {
        let c = RouterConfig::embedded().unwrap();
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.queue.max_attempts, 3);
        // The file spells out the routing defaults (fractional rounding included).
        assert_eq!(c.routing, RoutingConfig::default());
        assert!(c.routing.placement.fractional);
        let e = RouterConfig::parse("listne = \"127.0.0.1:1\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("listne"), "{e}");
        let e = RouterConfig::parse("listen = \"0.0.0.0:80\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("auth_token"), "{e}");
        let e = RouterConfig::parse("[async]\nack_wait_s = 0\n", "t").unwrap_err();
        assert!(e.to_string().contains("ack_wait_s"), "{e}");
        let e =
            RouterConfig::parse("[routing.placement]\nfractional = \"yes\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("fractional"), "{e}");
        // The walk and the hint slack: a negative walk is a type error, a negative slack refused.
        let e = RouterConfig::parse("[routing.placement]\nprobes = -1\n", "t").unwrap_err();
        assert!(e.to_string().contains("probes"), "{e}");
        let e = RouterConfig::parse("[routing.placement]\nhint_slack = -1.0\n", "t").unwrap_err();
        assert!(e.to_string().contains("hint_slack"), "{e}");
    }
}
