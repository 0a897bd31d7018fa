//! Placement: which bin a key's work goes to — a GPU inside a worker (the [`Scheduler`] uses it
//! for every start) or a worker inside a cluster (the router will). One pure, deterministic
//! algorithm for both levels: no clock, no I/O, no thread; randomness only from an injected,
//! seeded source.
//!
//! [`Scheduler`]: crate::scheduler::Scheduler
//!
//! # The algorithm
//!
//! - **Consistent hashing with bounded loads** (Mirrokni, Thorup & Zadimoghaddam, SODA 2018).
//!   Each bin owns `weight × vnodes_per_weight` points on a 64-bit ring, virtual node `i` of bin
//!   `b` at `stable_hash(b, i)` ([`hash`]): every replica that sees the same membership builds
//!   the same ring, whatever order the bins joined in. A key's *home* is the bin of the first
//!   point clockwise from the key. A bin is *acceptable* while
//!   `load + 1 ≤ ⌈(1+ε)·(L+1)·w/W⌉` (`L` total load, `w` its weight, `W` total weight); the
//!   key goes to the first acceptable bin clockwise from its home (its home unless that is
//!   over its bound), so spills are themselves sticky: the same key spills to the same bins.
//! - **Fractional rounding** ([`PlacementParams::fractional`], for a cluster router): with
//!   about two invocations outstanding per bin the ceiling alone lets a bin carry 1.5 times
//!   the mean (`⌈1.25·2.01⌉ = 3`), so the bound is rounded at random instead, to `⌊x + u⌋` (at
//!   least 1) for a uniform `u` that each bin draws afresh whenever its load falls (a
//!   departure). The draw belongs to the bin, not to the placement: a bin offered work
//!   continuously refills to its bound after every departure, and with a fresh draw per
//!   placement one of those offers would soon draw high and take it to `⌈x⌉` every time; with
//!   one draw per departure it refills to `⌈x⌉` for a `frac(x)` share of departures only, so a
//!   bin held at its bound carries about `x` on average, and never more than `⌈x⌉`.
//! - **Locality hints**: the caller lists bins that hold something for the key (a warm
//!   sandbox, resident memory) with a level (higher is better); the best acceptable hinted bin
//!   wins over the walk. A hinted bin stays acceptable up to `hint_slack` above its bound
//!   (default 1: one more warm start beats a cold one elsewhere; 0 is the plain rule).
//! - **Usable**: a hard filter from the caller (a GPU with a free token, a live worker with
//!   capacity); an unusable bin is never chosen.
//! - **Power-of-two-choices fallback**: when none of the first `probes` distinct bins clockwise
//!   is usable and acceptable, the less loaded (relative to weight) of two bins drawn from the
//!   random source, or failing that the least loaded usable bin.
//! - **CH-RLU options** (Fuerst & Sharma, HPDC'22): `popularity_gate` lets only keys the caller
//!   marks popular spill (the others stay home while it is usable); `jitter` makes each
//!   placement add `1 ± jitter` to the chosen bin's local load, so choosers that share a stale
//!   view of the loads do not herd.
//! - **Membership**: bins join and leave at any time; only the keys whose home was (or becomes)
//!   the changed bin move. Keys registered with [`Placement::track`] are re-homed on every
//!   change and the moves counted ([`Remap`], [`Placement::remaps`]).
//!
//! # API (for a router)
//!
//! ```
//! use sluice_policy::placement::{Key, Placement, PlacementParams, Request};
//!
//! let mut ring: Placement<String> = Placement::new(PlacementParams::default()).unwrap();
//! for (worker, gpus) in [("w1", 4), ("w2", 4), ("w3", 8)] {
//!     ring.join(worker.to_string(), gpus).unwrap(); // weight = capacity (e.g. GPU tokens)
//! }
//! let key = Key::of_str("resnet50");
//! ring.track(key);
//! // Loads from the workers' reports (invocations running and queued, say):
//! ring.set_load(&"w2".to_string(), 3.0).unwrap();
//! let warm = [("w3".to_string(), 2u8)]; // w3 has a warm sandbox of resnet50
//! let usable = |w: &String| w != "w1"; // w1 is draining
//! let req = Request { key, hints: &warm, usable: &usable, popular: true };
//! let choice = ring.place(&req).unwrap(); // chooses and adds the local load increment
//! assert_eq!(choice.bin, "w3");
//! let moved = ring.leave(&"w3".to_string()).unwrap();
//! assert_eq!(moved.tracked, 1);
//! ```
//!
//! Loads are whatever the caller counts (tokens in use, invocations in flight), as `f64` so that
//! jittered increments fit; the caller keeps them current with [`Placement::set_load`] (from a
//! report) and [`Placement::add_load`] (local bookkeeping). Cost: a choice is a binary search
//! on the ring plus a walk over at most `probes` distinct bins plus one lookup per hint; a
//! membership change rebuilds the ring (`O(R log R)` for `R` points) and re-homes tracked keys.

mod choose;
pub mod hash;
mod params;

#[cfg(test)]
mod tests;

pub use choose::{Choice, ChoiceKind, Request};
pub use hash::{stable_hash, BinId, Key, StableHasher};
pub use params::{PlacementError, PlacementParams, RandomSource, SplitMix64};

use params::unit;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

/// Most ring points one bin may own (bounds a bin's weight at `MAX_POINTS / vnodes_per_weight`).
pub const MAX_POINTS_PER_BIN: u32 = 1 << 16;

/// One member.
#[derive(Clone, Debug)]
struct Bin<B> {
    id: B,
    weight: u32,
    load: f64,
    /// The bin's uniform draw for fractional rounding, renewed when its load falls.
    draw: f64,
}

/// The count bound a placement is made under (see [`PlacementParams::fractional`]).
#[derive(Copy, Clone, Debug, PartialEq)]
enum Rule {
    /// The bound `x` is rounded up.
    Ceiling,
    /// The bound `x` is rounded to `⌊x + u⌋`, at least 1, for the bin's own uniform draw `u`.
    Rounded,
}

/// How many tracked keys changed home in one membership change.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Remap {
    /// Keys tracked when the change happened.
    pub tracked: usize,
    /// Of those, the keys whose home is now another bin.
    pub moved: usize,
}

/// Consistent hashing with bounded loads over weighted bins (see the module documentation).
pub struct Placement<B: BinId> {
    params: PlacementParams,
    /// Members, sorted by id (so slots depend only on the membership, not on join order).
    bins: Vec<Bin<B>>,
    /// Ring points `(point, slot)`, sorted by point then bin id.
    ring: Vec<(u64, u32)>,
    /// `index[b]`: the first ring index whose point's top `index_bits` bits are ≥ `b` (one more
    /// entry at the end): a lookup binary-searches one bucket, not the whole ring (a large ring
    /// does not fit in cache, and a whole-ring search was most of a choice's cost at 1,000 bins).
    index: Vec<u32>,
    index_bits: u32,
    total_load: f64,
    total_weight: u64,
    random: Box<dyn RandomSource>,
    tracked: BTreeSet<Key>,
    remaps: u64,
    /// Per slot, the walk that last visited it (distinct-bin walks without allocating).
    visited: RefCell<Vec<u32>>,
    walk: Cell<u32>,
}

impl<B: BinId> std::fmt::Debug for Placement<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placement")
            .field("params", &self.params)
            .field("bins", &self.bins)
            .field("points", &self.ring.len())
            .field("total_load", &self.total_load)
            .finish()
    }
}

impl<B: BinId> Placement<B> {
    /// An empty placement with the built-in random source seeded with `params.seed`.
    pub fn new(params: PlacementParams) -> Result<Self, PlacementError> {
        let seed = params.seed;
        Self::with_random(params, Box::new(SplitMix64::new(seed)))
    }

    /// An empty placement drawing its random words from `random`.
    pub fn with_random(
        params: PlacementParams,
        random: Box<dyn RandomSource>,
    ) -> Result<Self, PlacementError> {
        params.validate()?;
        Ok(Placement {
            params,
            bins: Vec::new(),
            ring: Vec::new(),
            total_load: 0.0,
            total_weight: 0,
            random,
            tracked: BTreeSet::new(),
            remaps: 0,
            visited: RefCell::new(Vec::new()),
            index: vec![0, 0],
            index_bits: 0,
            walk: Cell::new(0),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &PlacementParams {
        &self.params
    }

    fn slot(&self, id: &B) -> Result<usize, PlacementError> {
        self.bins
            .binary_search_by(|b| b.id.cmp(id))
            .map_err(|_| PlacementError::Unknown(format!("{id:?}")))
    }

    fn max_weight(&self) -> u32 {
        (MAX_POINTS_PER_BIN / self.params.vnodes_per_weight).max(1)
    }

    fn check_weight(&self, id: &B, weight: u32) -> Result<(), PlacementError> {
        let max = self.max_weight();
        if weight == 0 || weight > max {
            return Err(PlacementError::Weight {
                bin: format!("{id:?}"),
                weight,
                max,
            });
        }
        Ok(())
    }

    /// Adds a bin of `weight` (≥ 1) with load 0.
    pub fn join(&mut self, id: B, weight: u32) -> Result<Remap, PlacementError> {
        self.join_all([(id, weight)])
    }

    /// Adds several bins at once (one ring rebuild); all or none.
    pub fn join_all(
        &mut self,
        bins: impl IntoIterator<Item = (B, u32)>,
    ) -> Result<Remap, PlacementError> {
        let new: Vec<(B, u32)> = bins.into_iter().collect();
        for (i, (id, w)) in new.iter().enumerate() {
            self.check_weight(id, *w)?;
            if self.slot(id).is_ok() || new[..i].iter().any(|(o, _)| o == id) {
                return Err(PlacementError::Duplicate(format!("{id:?}")));
            }
        }
        let (random, fractional) = (&mut self.random, self.params.fractional);
        let new: Vec<Bin<B>> = new
            .into_iter()
            .map(|(id, weight)| Bin {
                id,
                weight,
                load: 0.0,
                draw: if fractional {
                    unit(random.next_u64())
                } else {
                    0.0
                },
            })
            .collect();
        self.change(|bins| bins.extend(new))
    }

    /// Removes a bin (and its load).
    pub fn leave(&mut self, id: &B) -> Result<Remap, PlacementError> {
        let slot = self.slot(id)?;
        self.change(|bins| {
            bins.remove(slot);
        })
    }

    /// Changes a bin's weight (its share of the ring and of the load bound).
    pub fn set_weight(&mut self, id: &B, weight: u32) -> Result<Remap, PlacementError> {
        self.check_weight(id, weight)?;
        let slot = self.slot(id)?;
        self.change(|bins| bins[slot].weight = weight)
    }

    /// Applies a membership change, rebuilds the ring and counts the tracked keys that moved.
    fn change(&mut self, edit: impl FnOnce(&mut Vec<Bin<B>>)) -> Result<Remap, PlacementError> {
        let before: Vec<Option<B>> = self
            .tracked
            .iter()
            .map(|&k| self.home(k).cloned())
            .collect();
        edit(&mut self.bins);
        self.bins.sort_by(|a, b| a.id.cmp(&b.id));
        self.rebuild();
        let moved = self
            .tracked
            .iter()
            .zip(&before)
            .filter(|&(&k, old)| old.is_some() && self.home(k) != old.as_ref())
            .count();
        self.remaps += moved as u64;
        Ok(Remap {
            tracked: self.tracked.len(),
            moved,
        })
    }

    fn rebuild(&mut self) {
        let vnodes = self.params.vnodes_per_weight;
        let mut ring =
            Vec::with_capacity(self.bins.iter().map(|b| (b.weight * vnodes) as usize).sum());
        for (slot, b) in self.bins.iter().enumerate() {
            for i in 0..b.weight * vnodes {
                ring.push((hash::vnode_point(&b.id, i), slot as u32));
            }
        }
        // Slots follow id order, so (point, slot) order is (point, id) order.
        ring.sort_unstable();
        self.ring = ring;
        self.rebuild_index();
        self.total_weight = self.bins.iter().map(|b| u64::from(b.weight)).sum();
        self.total_load = self.bins.iter().map(|b| b.load).sum();
        self.visited = RefCell::new(vec![0; self.bins.len()]);
        self.walk = Cell::new(0);
    }

    /// Sets a bin's load (from a load report, or the caller's own count).
    pub fn set_load(&mut self, id: &B, load: f64) -> Result<(), PlacementError> {
        let slot = self.slot(id)?;
        self.set_load_at(slot, load);
        Ok(())
    }

    /// Adds `delta` to a bin's load (clamped at 0).
    pub fn add_load(&mut self, id: &B, delta: f64) -> Result<(), PlacementError> {
        let slot = self.slot(id)?;
        let load = self.bins[slot].load + delta;
        self.set_load_at(slot, load);
        Ok(())
    }

    /// Sets a bin's load; a fall (a departure) renews the bin's draw for fractional rounding.
    fn set_load_at(&mut self, slot: usize, load: f64) {
        let load = if load.is_finite() { load.max(0.0) } else { 0.0 };
        if self.params.fractional && load < self.bins[slot].load {
            self.bins[slot].draw = unit(self.random.next_u64());
        }
        let bin = &mut self.bins[slot];
        self.total_load = (self.total_load - bin.load + load).max(0.0);
        bin.load = load;
    }

    /// A bin's load.
    pub fn load(&self, id: &B) -> Option<f64> {
        self.slot(id).ok().map(|s| self.bins[s].load)
    }

    /// The sum of all loads (`L`).
    pub fn total_load(&self) -> f64 {
        self.total_load
    }

    /// A bin's load bound now, `⌈(1+ε)·(L+1)·w/W⌉`: it is acceptable while `load + 1` fits.
    pub fn bound(&self, id: &B) -> Option<f64> {
        self.slot(id).ok().map(|s| self.bound_at(s))
    }

    /// `⌈(1+ε)·(L+1)·w/W⌉`, with a 1e-9 allowance so that a product that is an integer in exact
    /// arithmetic (85·3/17) is not rounded up by float error.
    fn bound_at(&self, slot: usize) -> f64 {
        (self.share(slot) - 1e-9).ceil()
    }

    /// `(1+ε)·(L+1)·w/W`, the bound before rounding.
    fn share(&self, slot: usize) -> f64 {
        let w = f64::from(self.bins[slot].weight);
        (1.0 + self.params.epsilon) * (self.total_load + 1.0) * w / self.total_weight.max(1) as f64
    }

    /// The bin's bound under `rule`: `⌈x⌉`, or `⌊x + u⌋` for the bin's draw `u` but at least 1
    /// (an empty bin always accepts, as under the ceiling).
    fn bound_under(&self, slot: usize, rule: Rule) -> f64 {
        match rule {
            Rule::Ceiling => self.bound_at(slot),
            Rule::Rounded => (self.share(slot) + self.bins[slot].draw - 1e-9)
                .floor()
                .max(1.0),
        }
    }

    /// Whether one more unit fits under the bin's bound under `rule` (plus `slack`).
    fn acceptable(&self, slot: usize, rule: Rule, slack: f64) -> bool {
        self.bins[slot].load + 1.0 <= self.bound_under(slot, rule) + slack + 1e-9
    }

    /// The bin of the first ring point clockwise from `key` (`None` without bins).
    pub fn home(&self, key: Key) -> Option<&B> {
        let i = self.start(key)?;
        Some(&self.bins[self.ring[i].1 as usize].id)
    }

    /// About four ring points per bucket of the lookup index (at most 2^20 buckets).
    fn rebuild_index(&mut self) {
        let n = self.ring.len();
        let bits = (n / 4).max(1).ilog2().min(20);
        let buckets = 1usize << bits;
        let mut index = Vec::with_capacity(buckets + 1);
        let mut i = 0usize;
        for b in 0..buckets as u64 {
            while i < n && self.bucket(self.ring[i].0, bits) < b {
                i += 1;
            }
            index.push(i as u32);
        }
        index.push(n as u32);
        self.index = index;
        self.index_bits = bits;
    }

    fn bucket(&self, point: u64, bits: u32) -> u64 {
        point.checked_shr(64 - bits).unwrap_or(0)
    }

    /// Index of the first ring point at or after `key`'s point (the key itself, or its salted
    /// hash under [`PlacementParams::key_salt`]), wrapping.
    fn start(&self, key: Key) -> Option<usize> {
        if self.ring.is_empty() {
            return None;
        }
        let point = match self.params.key_salt {
            0 => key.0,
            salt => hash::fmix64(key.0 ^ salt),
        };
        let b = self.bucket(point, self.index_bits) as usize;
        let (lo, hi) = (self.index[b] as usize, self.index[b + 1] as usize);
        let i = lo + self.ring[lo..hi].partition_point(|&(p, _)| p < point);
        Some(if i == self.ring.len() { 0 } else { i })
    }

    /// Registers a key whose home is re-computed on every membership change (counted in
    /// [`Remap`] and [`Placement::remaps`]).
    pub fn track(&mut self, key: Key) {
        self.tracked.insert(key);
    }

    /// Tracked keys that changed home, over all membership changes so far.
    pub fn remaps(&self) -> u64 {
        self.remaps
    }

    /// Members: `(id, weight, load)`, in id order.
    pub fn bins(&self) -> impl Iterator<Item = (&B, u32, f64)> + '_ {
        self.bins.iter().map(|b| (&b.id, b.weight, b.load))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.bins.len()
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: &B) -> bool {
        self.slot(id).is_ok()
    }
}
