//! The simulator's configuration file: device model, scheduler parameters and trace options,
//! with embedded defaults (`config/sim.toml`). Unknown keys are errors, so a typo is caught.

use crate::device::DeviceModel;
use crate::trace::Spread;
use serde::{Deserialize, Serialize};
use sluice_policy::scheduler::SchedulerConfig;
use std::path::Path;

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../../../config/sim.toml");

/// Trace-replay options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceOptions {
    /// How arrivals are spread inside an Azure trace minute.
    pub spread: Spread,
    /// Seed of every random choice (arrival spreading, Poisson mixes).
    pub seed: u64,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            spread: Spread::Poisson,
            seed: 42,
        }
    }
}

/// Admission control at arrival (off unless `max_queue_ms` is set).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionOptions {
    /// Reject an arrival whose predicted queueing delay exceeds this many milliseconds, as the
    /// worker's `max_queue_ms` admission does (docs/simulator.md). `None`: admit everything.
    pub max_queue_ms: Option<f64>,
}

impl AdmissionOptions {
    /// The bound as a duration.
    pub fn max_queue(&self) -> Option<sluice_core::Dur> {
        self.max_queue_ms.map(sluice_core::Dur::from_millis_f64)
    }
}

/// Sandboxes created before the first arrival, as an operator does with the worker's prewarm
/// API (`POST /v1/functions/{name}/prewarm`); none by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrewarmOptions {
    /// Sandboxes per function, ready at time zero on the device placement chooses for each (its
    /// home unless that is over its bound), as far as the creation cap and memory allow. They
    /// count as cold starts; like any idle sandbox they expire after the keep-alive TTL.
    pub per_function: u32,
}

/// The most sandboxes per function `prewarm.per_function` may ask for.
pub const MAX_PREWARM: u32 = 64;

/// The whole simulator configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Number of devices modelled.
    pub gpus: usize,
    /// How long work and memory movement take on each modelled device.
    pub device: DeviceModel,
    /// The scheduler's configuration; an experiment overrides `policy` for each run.
    pub scheduler: SchedulerConfig,
    /// How traces are replayed: the in-minute spread and the random seed.
    pub trace: TraceOptions,
    /// Admission control at arrival (off unless `max_queue_ms` is set).
    pub admission: AdmissionOptions,
    /// Sandboxes created before the first arrival (none by default).
    pub prewarm: PrewarmOptions,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            gpus: 1,
            device: DeviceModel::default(),
            scheduler: SchedulerConfig::default(),
            trace: TraceOptions::default(),
            admission: AdmissionOptions::default(),
            prewarm: PrewarmOptions::default(),
        }
    }
}

/// A configuration that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file, as displayed.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The text is not a valid [`SimConfig`] in TOML (syntax, unknown key, wrong type), or a value
    /// is out of range.
    #[error("invalid config {origin}: {message}")]
    Invalid {
        /// Where the text came from: the file's path, or `(embedded)` for the built-in defaults.
        origin: String,
        /// The parser's or the range check's message, naming the key.
        message: String,
    },
}

impl SimConfig {
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
        let cfg: SimConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
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

    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.gpus == 0 || self.gpus > 1024 {
            return Err(format!("gpus must be in 1..=1024, got {}", self.gpus));
        }
        self.device.validate()?;
        if let Some(ms) = self.admission.max_queue_ms {
            if !(ms.is_finite() && ms > 0.0) {
                return Err(format!(
                    "admission.max_queue_ms must be a positive number of milliseconds, got {ms}"
                ));
            }
        }
        if self.prewarm.per_function > MAX_PREWARM {
            return Err(format!(
                "prewarm.per_function must be at most {MAX_PREWARM}, got {}",
                self.prewarm.per_function
            ));
        }
        let mems = vec![self.device.memory_bytes(); self.gpus];
        sluice_policy::scheduler::Scheduler::new(&self.scheduler, mems)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_config_parses() {
        let c = SimConfig::embedded();
        assert_eq!(c.scheduler.slots.tokens_per_gpu, 2);
    }

    #[test]
    fn typos_and_bad_values_are_clear_errors() {
        let e = SimConfig::parse("[device]\nmemory_gb = 3\n", "t").unwrap_err();
        assert!(e.to_string().contains("memory_gb"), "{e}");
        let e = SimConfig::parse("[device]\nhost_device_gbps = -1\n", "t").unwrap_err();
        assert!(e.to_string().contains("host_device_gbps"), "{e}");
        let e = SimConfig::parse("gpus = 0\n", "t").unwrap_err();
        assert!(e.to_string().contains("gpus"), "{e}");
        let e = SimConfig::parse("[admission]\nmax_queue_ms = -1\n", "t").unwrap_err();
        assert!(e.to_string().contains("max_queue_ms"), "{e}");
        let e = SimConfig::parse("[scheduler.slots]\ntokens_per_gpu = 0\n", "t").unwrap_err();
        assert!(e.to_string().contains("tokens_per_gpu"), "{e}");
        let bad = "[scheduler.slots]\ncold_start_holds_token = \"yes\"\n";
        let e = SimConfig::parse(bad, "t").unwrap_err();
        assert!(e.to_string().contains("cold_start_holds_token"), "{e}");
        assert!(SimConfig::parse("not toml [", "t").is_err());
        let e = SimConfig::parse("[prewarm]\nper_function = 65\n", "t").unwrap_err();
        assert!(e.to_string().contains("prewarm.per_function"), "{e}");
        assert_eq!(
            SimConfig::embedded().prewarm.per_function,
            0,
            "off by default"
        );
    }
}
