//! Memory parameters and vocabulary: how memory follows flow state ([`FlowCoupling`]), eviction
//! ranks ([`Rank`]) and the oversubscription limit ([`MemoryParams`]).

use serde::{Deserialize, Serialize};

/// How idle sandboxes' memory follows their flow's state (flow-based policies only).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowCoupling {
    /// Memory moves only on demand, before a start.
    Off,
    /// MQFQ-Sticky: prefetch when the flow turns Active, push to host as soon as it leaves.
    Eager,
    /// Prefetch when the flow turns Active; leaving Active only drops its sandboxes to the
    /// common rank, pushed out least recently used first with everything else not Active when a
    /// start needs room (no bytes move until they must).
    Lazy,
}

/// Eviction rank of an idle sandbox: lower ranks are pushed to host first, least recently used
/// first within a rank.
///
/// An Inactive flow's sandboxes are not ranked below a Throttled one's: on the overloaded Azure
/// day that rank pushed out sandboxes of flows that had just gone Inactive ahead of older ones,
/// and they came back (docs/mqfq-results.md, change 13).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rank {
    /// Its flow is Throttled or Inactive, or the policy has no flows.
    Normal,
    /// Its flow is Active: expected to run again soon.
    Hot,
}

/// Memory parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryParams {
    /// Resident bytes may reach `capacity × oversubscribe` (≥ 1; 1 = never oversubscribe).
    pub oversubscribe: f64,
    /// How memory follows flow state.
    pub flow_coupling: FlowCoupling,
}

impl Default for MemoryParams {
    fn default() -> Self {
        MemoryParams {
            oversubscribe: 1.0,
            flow_coupling: FlowCoupling::Lazy,
        }
    }
}

impl MemoryParams {
    /// Checks that `oversubscribe` is a finite number ≥ 1; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.oversubscribe.is_finite() && self.oversubscribe >= 1.0) {
            return Err("memory.oversubscribe must be a number ≥ 1".into());
        }
        Ok(())
    }
}
