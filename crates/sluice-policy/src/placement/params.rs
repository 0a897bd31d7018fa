//! The placement policy's parameters, its errors, and the injected random source (used only by
//! the CH-RLU options and the power-of-two fallback, so that runs stay deterministic under a seed).

use serde::{Deserialize, Serialize};

/// Parameters of a [`Placement`](super::Placement). Unknown keys are rejected when deserialised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlacementParams {
    /// ε of the load bound: a bin is acceptable while `load + 1 ≤ ⌈(1+ε)·(L+1)·w/W⌉`, with `L`
    /// the total load, `w` the bin's weight and `W` the total weight (Mirrokni et al.: 0.25 keeps
    /// every bin within 25% of its share; larger values keep more keys at home).
    pub epsilon: f64,
    /// Virtual nodes per unit of weight (a bin of weight `w` owns `w × vnodes_per_weight` ring
    /// points); more points spread homes closer to the weights (100: homes within 0.15 of the
    /// weight shares in total variation).
    pub vnodes_per_weight: u32,
    /// Distinct bins examined clockwise from the home before the power-of-two fallback; 0
    /// examines every bin.
    pub probes: usize,
    /// A hinted bin (one that holds something for the key) stays acceptable up to this much
    /// load above its bound: reusing a warm sandbox is worth more than balance when the
    /// alternative is a cold start (seconds) and a copy of the function's memory. 0 applies the
    /// plain bound to hinted bins too.
    pub hint_slack: f64,
    /// CH-RLU popularity gate (Fuerst & Sharma, HPDC'22): only keys the caller marks popular
    /// spill past their home; the others stay home while it is usable and its load is within
    /// [`gate_ceiling`](Self::gate_ceiling).
    pub popularity_gate: bool,
    /// Under the popularity gate, an unpopular key stays home only while the home's load is at
    /// most this multiple of its bound; past it the key is placed as a popular one is (hints,
    /// the bounded walk, the fallback). The paper's gate has no ceiling, which lets a rarely
    /// called but long-running function queue on its home for hours while other bins idle (the
    /// cluster simulator showed it). 0: no ceiling (the paper's rule); otherwise at least 1.
    pub gate_ceiling: f64,
    /// CH-RLU random local load increments: each placement adds `1 + u` to the chosen bin's
    /// local load, `u` uniform in `[-jitter, +jitter]`, so that several choosers that share a
    /// stale view of the loads do not all pick the same bin. 0 adds exactly 1.
    pub jitter: f64,
    /// Randomised rounding of the count bound: a bin whose bound `x = (1+ε)·(L+1)·w/W` is
    /// fractional is acceptable at `⌈x⌉` only while its own uniform draw `u` (renewed whenever
    /// its load falls) has `⌊x + u⌋ = ⌈x⌉`, which holds after a `frac(x)` share of its
    /// departures, so a bin held at its bound carries about `x` on average instead of `⌈x⌉`;
    /// an empty bin always accepts (the bound is at least 1, as the ceiling is). It matters when loads are small counts: with
    /// two invocations outstanding per worker on average, `⌈1.25·2.01⌉ = 3` is 1.5 times the
    /// mean. Off: the plain ceiling (the device-level placement inside a worker).
    pub fractional: bool,
    /// Seed of the built-in random source (the fallback's two choices, the jitter and the
    /// fractional rounding).
    pub seed: u64,
    /// Salt mixed into every key before it is looked up on the ring. 0 (the default) is the
    /// pinned layout that every replica and every build agree on; any other value gives another,
    /// equally valid, layout of homes. For experiments: runs that differ only in which bin is each
    /// key's home (replicas of a simulation), to tell a policy's effect from where the hash
    /// happened to put a few functions. Every chooser sharing a ring must use the same salt.
    pub key_salt: u64,
}

impl Default for PlacementParams {
    fn default() -> Self {
        PlacementParams {
            epsilon: 0.25,
            vnodes_per_weight: 100,
            probes: 8,
            hint_slack: 1.0,
            popularity_gate: false,
            gate_ceiling: 2.0,
            jitter: 0.0,
            fractional: false,
            seed: 0,
            key_salt: 0,
        }
    }
}

impl PlacementParams {
    /// Checks ranges; the message names the key.
    pub fn validate(&self) -> Result<(), PlacementError> {
        if !(self.epsilon.is_finite() && self.epsilon >= 0.0) {
            return Err(PlacementError::Invalid(
                "placement.epsilon must be a non-negative number".into(),
            ));
        }
        if self.vnodes_per_weight == 0 {
            return Err(PlacementError::Invalid(
                "placement.vnodes_per_weight must be at least 1".into(),
            ));
        }
        if !(self.hint_slack.is_finite() && self.hint_slack >= 0.0) {
            return Err(PlacementError::Invalid(
                "placement.hint_slack must be a non-negative number".into(),
            ));
        }
        if !(self.gate_ceiling == 0.0
            || (self.gate_ceiling.is_finite() && self.gate_ceiling >= 1.0))
        {
            return Err(PlacementError::Invalid(
                "placement.gate_ceiling must be 0 (no ceiling) or a number of at least 1".into(),
            ));
        }
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            return Err(PlacementError::Invalid(
                "placement.jitter must be in [0, 1)".into(),
            ));
        }
        Ok(())
    }
}

/// Why a placement operation was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlacementError {
    /// A parameter is out of range.
    #[error("invalid parameter: {0}")]
    Invalid(String),
    /// `join` of a bin that is already a member.
    #[error("bin {0} is already a member")]
    Duplicate(String),
    /// An operation named a bin that is not a member.
    #[error("bin {0} is not a member")]
    Unknown(String),
    /// A weight of zero, or one whose ring points would exceed the limit.
    #[error("bin {bin}: weight {weight} is not in 1..={max}")]
    Weight {
        /// The bin, as `Debug` prints it.
        bin: String,
        /// The weight asked for.
        weight: u32,
        /// The largest weight accepted with these parameters.
        max: u32,
    },
}

/// A source of random 64-bit words. Inject one to make several choosers differ (each router its
/// own seed) while every run stays reproducible.
pub trait RandomSource: Send {
    /// The next word.
    fn next_u64(&mut self) -> u64;
}

/// SplitMix64 (Steele, Lea & Flood, OOPSLA'14): tiny, fast and good enough for tie-breaking.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        super::hash::fmix64(self.0)
    }
}

/// A uniform float in `[0, 1)` from a random word (53 significant bits).
pub(super) fn unit(word: u64) -> f64 {
    (word >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_named() {
        assert!(PlacementParams::default().validate().is_ok());
        for (p, key) in [
            (
                PlacementParams {
                    epsilon: -1.0,
                    ..Default::default()
                },
                "epsilon",
            ),
            (
                PlacementParams {
                    vnodes_per_weight: 0,
                    ..Default::default()
                },
                "vnodes_per_weight",
            ),
            (
                PlacementParams {
                    jitter: 1.0,
                    ..Default::default()
                },
                "jitter",
            ),
        ] {
            assert!(p.validate().unwrap_err().to_string().contains(key));
        }
    }

    #[test]
    fn splitmix_is_seeded_and_unit_is_in_range() {
        let a: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = SplitMix64::new(7);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(SplitMix64::new(8).next_u64(), a[0]);
        assert!((0.0..1.0).contains(&unit(u64::MAX)) && unit(0) == 0.0);
    }
}
