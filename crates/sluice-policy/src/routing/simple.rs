//! The routing rules without homes: weighted random, round robin, least loaded (an ordered index
//! of load per weight) and the power of two choices. Members are kept sorted by id, so every
//! choice depends only on the membership, the loads and the seed.

use super::RouterKind;
use crate::placement::{BinId, PlacementError, RandomSource, SplitMix64};
use std::collections::BTreeSet;

/// Most weight one member may have (keeps the cumulative weights far from overflow).
const MAX_WEIGHT: u32 = 1 << 20;

#[derive(Clone, Debug)]
struct Member<B> {
    id: B,
    weight: u32,
    load: f64,
}

/// Random, round-robin, least-loaded and p2c over weighted members.
pub(super) struct Simple<B> {
    kind: RouterKind,
    /// Sorted by id.
    members: Vec<Member<B>>,
    /// `cumulative[i]`: the total weight of members `0..=i` (weighted draws).
    cumulative: Vec<u64>,
    /// Least-loaded index: `(load per weight as ordered bits, slot)`.
    by_load: BTreeSet<(u64, u32)>,
    cursor: usize,
    random: SplitMix64,
}

/// Non-negative floats order like their bit patterns.
fn key(load: f64, weight: u32) -> u64 {
    (load.max(0.0) / f64::from(weight.max(1))).to_bits()
}

impl<B: BinId> Simple<B> {
    pub(super) fn new(kind: RouterKind, random: SplitMix64) -> Self {
        Simple {
            kind,
            members: Vec::new(),
            cumulative: Vec::new(),
            by_load: BTreeSet::new(),
            cursor: 0,
            random,
        }
    }

    fn slot(&self, id: &B) -> Result<usize, PlacementError> {
        self.members
            .binary_search_by(|m| m.id.cmp(id))
            .map_err(|_| PlacementError::Unknown(format!("{id:?}")))
    }

    pub(super) fn join(&mut self, id: B, weight: u32) -> Result<(), PlacementError> {
        if weight == 0 || weight > MAX_WEIGHT {
            return Err(PlacementError::Weight {
                bin: format!("{id:?}"),
                weight,
                max: MAX_WEIGHT,
            });
        }
        match self.members.binary_search_by(|m| m.id.cmp(&id)) {
            Ok(_) => Err(PlacementError::Duplicate(format!("{id:?}"))),
            Err(at) => {
                self.members.insert(
                    at,
                    Member {
                        id,
                        weight,
                        load: 0.0,
                    },
                );
                self.rebuild();
                Ok(())
            }
        }
    }

    pub(super) fn leave(&mut self, id: &B) -> Result<(), PlacementError> {
        let slot = self.slot(id)?;
        self.members.remove(slot);
        self.rebuild();
        Ok(())
    }

    /// Recomputes the cumulative weights and the load index after a membership change.
    fn rebuild(&mut self) {
        let mut total = 0u64;
        self.cumulative = self
            .members
            .iter()
            .map(|m| {
                total += u64::from(m.weight);
                total
            })
            .collect();
        if self.kind == RouterKind::LeastLoaded {
            self.by_load = self
                .members
                .iter()
                .enumerate()
                .map(|(s, m)| (key(m.load, m.weight), s as u32))
                .collect();
        }
        if self.cursor >= self.members.len() {
            self.cursor = 0;
        }
    }

    pub(super) fn set_load(&mut self, id: &B, load: f64) -> Result<(), PlacementError> {
        let slot = self.slot(id)?;
        self.set_load_at(slot, load);
        Ok(())
    }

    fn set_load_at(&mut self, slot: usize, load: f64) {
        let load = if load.is_finite() { load.max(0.0) } else { 0.0 };
        let m = &mut self.members[slot];
        if self.kind == RouterKind::LeastLoaded {
            self.by_load.remove(&(key(m.load, m.weight), slot as u32));
            self.by_load.insert((key(load, m.weight), slot as u32));
        }
        m.load = load;
    }

    pub(super) fn load(&self, id: &B) -> Option<f64> {
        self.slot(id).ok().map(|s| self.members[s].load)
    }

    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    /// A slot drawn with probability proportional to its weight.
    fn draw(&mut self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0).max(1);
        let x = self.random.next_u64() % total;
        self.cumulative.partition_point(|&c| c <= x)
    }

    fn relative(&self, slot: usize) -> (u64, usize) {
        let m = &self.members[slot];
        (key(m.load, m.weight), slot)
    }

    /// The least loaded usable slot (per weight, ties to the lowest id), by scanning.
    fn least_by_scan(&self, usable: &dyn Fn(&B) -> bool) -> Option<usize> {
        (0..self.members.len())
            .filter(|&s| usable(&self.members[s].id))
            .min_by_key(|&s| self.relative(s))
    }

    fn choose(&mut self, usable: &dyn Fn(&B) -> bool) -> Option<usize> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        match self.kind {
            RouterKind::RoundRobin => {
                let found = (0..n)
                    .map(|i| (self.cursor + i) % n)
                    .find(|&s| usable(&self.members[s].id))?;
                self.cursor = (found + 1) % n;
                Some(found)
            }
            RouterKind::LeastLoaded => self
                .by_load
                .iter()
                .map(|&(_, s)| s as usize)
                .find(|&s| usable(&self.members[s].id)),
            RouterKind::P2c => {
                let (a, b) = (self.draw(), self.draw());
                match (usable(&self.members[a].id), usable(&self.members[b].id)) {
                    (true, true) => Some(if self.relative(b) < self.relative(a) {
                        b
                    } else {
                        a
                    }),
                    (true, false) => Some(a),
                    (false, true) => Some(b),
                    (false, false) => self.least_by_scan(usable),
                }
            }
            // Random (and, defensively, a hashing kind that never reaches here).
            _ => {
                for _ in 0..8 {
                    let s = self.draw();
                    if usable(&self.members[s].id) {
                        return Some(s);
                    }
                }
                let start = self.draw();
                (0..n)
                    .map(|i| (start + i) % n)
                    .find(|&s| usable(&self.members[s].id))
            }
        }
    }

    /// Chooses a usable member and adds 1 to its load.
    pub(super) fn place(&mut self, usable: &dyn Fn(&B) -> bool) -> Option<B> {
        let slot = self.choose(usable)?;
        let load = self.members[slot].load + 1.0;
        self.set_load_at(slot, load);
        Some(self.members[slot].id.clone())
    }
}
