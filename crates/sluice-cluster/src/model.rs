//! What Sluice keeps in etcd and what workers report back: a worker's membership record
//! ([`Member`]), its load ([`Load`], sent as the `x-sluice-load` header on every invocation, and
//! [`LoadReport`] from `GET /v1/load`), a pipeline as registered ([`PipelineRecord`]) and one
//! replica of it placed on a worker ([`Assignment`]).

use serde::{Deserialize, Serialize};
use sluice_worker::devices::GpuInfo;
use sluice_worker::pipeline::DeployRequest;
use std::collections::BTreeMap;

/// The name of the load header on invocation responses.
pub const LOAD_HEADER: &str = "x-sluice-load";

/// A worker as it announces itself under `workers/<id>` (bound to its lease).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Unique, stable id (default: derived from the advertised address).
    pub id: String,
    /// `host:port` routers call.
    pub addr: String,
    /// GPUs (or MIG instances) with model, memory and MIG placement.
    pub gpus: Vec<GpuInfo>,
    /// `real` (NVML) or `simulated`.
    pub devices: String,
    /// Device tokens per GPU (D).
    pub tokens_per_gpu: u32,
    /// Concurrent CPU invocations.
    pub cpu_slots: u32,
    /// The sandbox isolation in force (`bubblewrap`, `unshare`, `plain`).
    pub isolation: String,
    /// Operator labels (`zone=a`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When this incarnation joined, ms since the Unix epoch.
    pub joined_ms: u64,
}

impl Member {
    /// The capacity weight routing gives this worker: all of its device tokens, GPU and CPU.
    pub fn capacity(&self) -> u32 {
        (self.tokens_per_gpu * self.gpus.len() as u32 + self.cpu_slots).max(1)
    }
}

/// A worker's load: invocations queued, running, and its token capacity.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Waiting for a device token.
    pub queued: u32,
    /// Holding a device token.
    pub running: u32,
    /// Device tokens in all (GPU and CPU).
    pub tokens: u32,
}

impl Load {
    /// The header form: `<queued>,<running>,<tokens>`.
    pub fn header(&self) -> String {
        format!("{},{},{}", self.queued, self.running, self.tokens)
    }

    /// Parses the header form; `None` if malformed.
    pub fn parse(s: &str) -> Option<Load> {
        let mut it = s.split(',').map(|p| p.trim().parse::<u32>().ok());
        let load = Load {
            queued: it.next()??,
            running: it.next()??,
            tokens: it.next()??,
        };
        it.next().is_none().then_some(load)
    }

    /// Invocations the worker holds (queued or running).
    pub fn outstanding(&self) -> u32 {
        self.queued + self.running
    }
}

/// `GET /v1/load` on a worker: its load plus locality hints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Queued, running, tokens.
    #[serde(flatten)]
    pub load: Load,
    /// Whether the worker refuses new invocations.
    pub draining: bool,
    /// Functions with a live (idle or busy) sandbox.
    pub warm: Vec<String>,
    /// Functions whose GPU memory is resident on a device.
    #[serde(default)]
    pub resident: Vec<String>,
    /// Pipelines deployed on the worker.
    #[serde(default)]
    pub pipelines: Vec<String>,
}

/// A pipeline as registered through a router, under `pipelines/<name>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineRecord {
    /// What each worker deploys (one whole Camelot plan per replica).
    pub request: DeployRequest,
    /// Fewest replicas (default 1).
    #[serde(default = "one")]
    pub min_replicas: u32,
    /// Most replicas the controller scales to (default 8).
    #[serde(default = "eight")]
    pub max_replicas: u32,
}

fn one() -> u32 {
    1
}
fn eight() -> u32 {
    8
}

impl PipelineRecord {
    /// Checks the request and the replica bounds.
    pub fn validate(&self) -> Result<(), String> {
        self.request.validate().map_err(|e| e.to_string())?;
        if self.min_replicas == 0 || self.min_replicas > self.max_replicas {
            return Err("need 1 <= min_replicas <= max_replicas".into());
        }
        if self.max_replicas > 1024 {
            return Err("max_replicas is at most 1024".into());
        }
        Ok(())
    }
}

/// One replica of a pipeline placed on one worker, under `assign/<worker>/<pipeline>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The pipeline's `mod_revision` this replica deploys (a change redeploys it).
    pub revision: i64,
    /// What the worker deploys.
    pub request: DeployRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_header_round_trips_and_rejects_junk() {
        let l = Load {
            queued: 3,
            running: 2,
            tokens: 4,
        };
        assert_eq!(Load::parse(&l.header()), Some(l));
        for bad in ["", "1,2", "1,2,3,4", "a,b,c", "-1,2,3"] {
            assert_eq!(Load::parse(bad), None, "{bad}");
        }
    }
}
