//! The runtime re-planning controller: a pure state machine fed measured (load, p99) samples with
//! the current time; it answers "keep" or "re-plan with policy X at load Y". This module owns the
//! hysteresis rules (`docs/pipelines.md`, "Re-planning"):
//! - **up**: if the load stays above `high` × the current plan's capacity, or the p99 above the
//!   target, for a whole `window_s`, re-plan with `max-load` (unless the plan already is one);
//! - **down**: if the load stays below `low` × capacity for a whole `window_s`, re-plan with
//!   `min-resources` at `headroom` × the load;
//! - a condition must hold at every sample of the window (one sample outside restarts it), and
//!   no two re-plans are closer than `cooldown_s`, so the controller cannot flap.
//!
//! After a re-plan, the caller reports the adopted plan with [`Controller::adopt`].

use serde::{Deserialize, Serialize};

use crate::planner::Policy;

/// Thresholds and timers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerConfig {
    /// Fraction of capacity above which load counts as high.
    pub high: f64,
    /// Fraction of capacity below which load counts as low.
    pub low: f64,
    /// How long a condition must hold, seconds.
    pub window_s: f64,
    /// Least time between two re-plans, seconds.
    pub cooldown_s: f64,
    /// `min-resources` plans for this multiple of the measured load.
    pub headroom: f64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            high: 0.85,
            low: 0.4,
            window_s: 30.0,
            cooldown_s: 120.0,
            headroom: 1.3,
        }
    }
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("controller config: {0}")]
pub struct ConfigError(String);

impl ControllerConfig {
    /// `0 < low < high ≤ 1`, timers ≥ 0, and `1/high < headroom < 1/low`: a min-resources plan
    /// made for `headroom × load` starts inside its own band (neither high nor low).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let finite = [
            self.high,
            self.low,
            self.window_s,
            self.cooldown_s,
            self.headroom,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return Err(ConfigError("every field must be a finite number".into()));
        }
        if !(0.0 < self.low && self.low < self.high && self.high <= 1.0) {
            return Err(ConfigError(format!(
                "need 0 < low ({}) < high ({}) <= 1",
                self.low, self.high
            )));
        }
        if !(self.headroom * self.high > 1.0 && self.headroom * self.low < 1.0) {
            return Err(ConfigError(format!(
                "headroom ({}) must lie strictly between 1/high ({:.3}) and 1/low ({:.3}), so a fresh \
                 min-resources plan starts inside its own band",
                self.headroom,
                1.0 / self.high,
                1.0 / self.low
            )));
        }
        if self.window_s < 0.0 || self.cooldown_s < 0.0 {
            return Err(ConfigError("window_s and cooldown_s must be >= 0".into()));
        }
        Ok(())
    }
}

/// What to do after a sample.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Decision {
    /// Leave the plan in force.
    Keep,
    /// Make a new plan.
    Replan {
        /// The policy to plan with: `max-load` on high load or p99, `min-resources` on low load.
        policy: Policy,
        /// The load to plan for, requests/s: the measured load for `max-load`, `headroom` × the
        /// measured load for `min-resources`.
        load_rps: f64,
    },
}

/// The controller's state.
#[derive(Clone, Debug, PartialEq)]
pub struct Controller {
    cfg: ControllerConfig,
    slo_ms: f64,
    policy: Policy,
    capacity_rps: f64,
    high_since: Option<f64>,
    low_since: Option<f64>,
    last_replan: Option<f64>,
}

impl Controller {
    /// A controller for a pipeline with target `slo_ms`, running a plan of `policy` with
    /// predicted `capacity_rps`, adopted at `now` (seconds).
    pub fn new(
        cfg: ControllerConfig,
        slo_ms: f64,
        policy: Policy,
        capacity_rps: f64,
        now: f64,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Controller {
            cfg,
            slo_ms,
            policy,
            capacity_rps,
            high_since: None,
            low_since: None,
            last_replan: Some(now),
        })
    }

    /// The policy of the plan in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Reports that a new plan is in force from `now`.
    pub fn adopt(&mut self, policy: Policy, capacity_rps: f64, now: f64) {
        self.policy = policy;
        self.capacity_rps = capacity_rps;
        self.high_since = None;
        self.low_since = None;
        self.last_replan = Some(now);
    }

    /// Feeds one measurement taken at `now` (seconds, non-decreasing).
    pub fn observe(&mut self, now: f64, load_rps: f64, p99_ms: f64) -> Decision {
        let high = load_rps > self.cfg.high * self.capacity_rps || p99_ms > self.slo_ms;
        let low = !high && load_rps < self.cfg.low * self.capacity_rps;
        self.high_since = if high {
            self.high_since.or(Some(now))
        } else {
            None
        };
        self.low_since = if low {
            self.low_since.or(Some(now))
        } else {
            None
        };
        let cooled = self
            .last_replan
            .is_none_or(|t| now - t >= self.cfg.cooldown_s);
        let held = |since: Option<f64>| since.is_some_and(|t| now - t >= self.cfg.window_s);
        if !cooled {
            return Decision::Keep;
        }
        if held(self.high_since) && self.policy != Policy::MaxLoad {
            return Decision::Replan {
                policy: Policy::MaxLoad,
                load_rps,
            };
        }
        if held(self.low_since) {
            return Decision::Replan {
                policy: Policy::MinResources,
                load_rps: load_rps * self.cfg.headroom,
            };
        }
        Decision::Keep
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
