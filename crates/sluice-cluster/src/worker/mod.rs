//! The worker's side of the cluster: the membership agent ([`member`]: a lease-bound key,
//! renewal, fencing by draining when the lease cannot be renewed, rejoining), the registry
//! mirror ([`mirror`]: functions from etcd into the engine and the local store) and the
//! pipeline assignment reconciler ([`assign`]). [`Agent::start`] runs all three beside a worker
//! that [`sluice_worker::server::Worker::start`] built.

pub mod assign;
pub mod member;
pub mod mirror;

use crate::cache::Cache;
use crate::error::ClusterError;
use crate::etcd::{mirror as watch_prefix, Coordinator};
use crate::keys;
use crate::model::{Assignment, Member};
use sluice_worker::api::Shared;
use sluice_worker::devices::BackendKind;
use sluice_worker::function::FunctionSpec;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// What the agent needs to know beyond the worker's own state.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// etcd endpoints.
    pub etcd: Vec<String>,
    /// The member id.
    pub id: String,
    /// The address routers call.
    pub advertise: String,
    /// Lease TTL, seconds.
    pub ttl_s: i64,
}

impl AgentConfig {
    /// From the worker's `[cluster]` settings and the address it actually listens on.
    pub fn from_settings(
        s: &sluice_worker::config::ClusterSettings,
        bound: SocketAddr,
    ) -> Result<AgentConfig, ClusterError> {
        let advertise = s.advertise.clone().unwrap_or_else(|| bound.to_string());
        if advertise.parse::<SocketAddr>().is_err() && !advertise.contains(':') {
            return Err(ClusterError::Invalid(format!(
                "advertise address {advertise:?} is not host:port"
            )));
        }
        let id =
            s.id.clone()
                .unwrap_or_else(|| advertise.replace([':', '[', ']'], "-"));
        if !keys::valid_id(&id) {
            return Err(ClusterError::Invalid(format!(
                "worker id {id:?}: use 1-128 characters of [A-Za-z0-9._-]"
            )));
        }
        Ok(AgentConfig {
            etcd: s.etcd.clone(),
            id,
            advertise,
            ttl_s: s.lease_ttl_s.unwrap_or(10) as i64,
        })
    }
}

/// The running agent; [`Agent::leave`] revokes the membership on shutdown.
pub struct Agent {
    member: member::MemberHandle,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Connects to etcd and starts membership, the registry mirror and the assignment
    /// reconciler. Returns once they run; joining itself retries in the background, so a
    /// worker whose etcd is down still starts (drained until it joins).
    pub async fn start(state: Shared, cfg: AgentConfig) -> Result<Agent, ClusterError> {
        let coord = Coordinator::connect(&cfg.etcd).await?;
        let record = member_record(&state, &cfg);
        let (member, member_task) = member::start(coord.clone(), state.clone(), record, cfg.ttl_s);
        let functions: Arc<Cache<FunctionSpec>> = Cache::new(keys::FUNCTIONS);
        let assigned: Arc<Cache<Assignment>> = Cache::new(&keys::assignments_of(&cfg.id));
        let tasks = vec![
            member_task,
            tokio::spawn(watch_prefix(coord.clone(), functions.clone())),
            tokio::spawn(mirror::run(state.clone(), functions)),
            tokio::spawn(watch_prefix(coord.clone(), assigned.clone())),
            tokio::spawn(assign::run(state, assigned)),
        ];
        Ok(Agent { member, tasks })
    }

    /// Whether the worker currently holds a live lease.
    pub fn joined(&self) -> bool {
        self.member.joined()
    }

    /// Leaves the cluster: revokes the lease (routers drop the worker at once) and stops the
    /// agent's tasks.
    pub async fn leave(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.member.leave(Duration::from_secs(2)).await;
    }
}

/// The membership record of this worker.
pub fn member_record(state: &Shared, cfg: &AgentConfig) -> Member {
    let st = state.engine.status();
    let wc = state.engine.config();
    Member {
        id: cfg.id.clone(),
        addr: cfg.advertise.clone(),
        gpus: st.gpus,
        devices: match st.devices {
            BackendKind::Nvml => "nvml".into(),
            BackendKind::Simulated => "simulated".into(),
        },
        tokens_per_gpu: wc.scheduler.slots.tokens_per_gpu,
        cpu_slots: wc.cpu_slots(),
        isolation: st.isolation,
        labels: wc.cluster.labels.clone(),
        joined_ms: crate::now_ms(),
    }
}
