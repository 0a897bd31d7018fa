//! Maps keyed by the policy layer's own dense ids (sandboxes, functions, invocations). The ids
//! are handed out by the scheduler or its engine (a counter), never taken from input, so a fast
//! multiplicative hash is safe and spares the hot path `std`'s SipHash (which showed in
//! simulator profiles) ([`IdMap`], [`IdSet`]); where
//! the ids are small and dense (a scheduler's function ids count up from 0) a plain vector
//! indexed by the id is one memory access per lookup ([`DenseMap`]).

use sluice_core::FunctionId;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;

/// A map from an id to `V` with the [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A set of ids with the [`IdHasher`].
pub type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of the id's integer (ids hash through `write_u64`/`write_u32`/`write_u16`);
/// other bytes fold in one at a time.
#[derive(Default, Clone, Copy, Debug)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }

    fn write_u16(&mut self, x: u16) {
        self.write_u64(u64::from(x));
    }
}

/// An id that is a small index (ids handed out counting up from 0).
pub trait DenseId: Copy {
    /// The id as a vector index.
    fn dense_index(self) -> usize;
}

impl DenseId for FunctionId {
    fn dense_index(self) -> usize {
        self.index()
    }
}

/// A map from a dense id to `V`: a vector indexed by the id (its length the largest id stored
/// so far, plus one), with the part of `HashMap`'s interface the scheduler uses. Not iterable:
/// it holds no order to keep deterministic.
#[derive(Clone, Debug)]
pub struct DenseMap<K, V> {
    slots: Vec<Option<V>>,
    key: PhantomData<K>,
}

impl<K, V> Default for DenseMap<K, V> {
    fn default() -> Self {
        DenseMap {
            slots: Vec::new(),
            key: PhantomData,
        }
    }
}

impl<K: DenseId, V> DenseMap<K, V> {
    /// The value of `k`.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.slots.get(k.dense_index()).and_then(Option::as_ref)
    }

    /// The value of `k`, to change.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.slots.get_mut(k.dense_index()).and_then(Option::as_mut)
    }

    /// Whether `k` has a value.
    pub fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    /// Sets `k`'s value; returns the old one.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let i = self.grow(k);
        self.slots[i].replace(v)
    }

    /// Removes `k`'s value and returns it.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.slots.get_mut(k.dense_index()).and_then(Option::take)
    }

    /// `k`'s entry, to fill if empty.
    pub fn entry(&mut self, k: K) -> DenseEntry<'_, V> {
        let i = self.grow(k);
        DenseEntry {
            slot: &mut self.slots[i],
        }
    }

    /// Makes room for `k`; returns its index.
    fn grow(&mut self, k: K) -> usize {
        let i = k.dense_index();
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        i
    }
}

/// One key's place in a [`DenseMap`] (see [`DenseMap::entry`]).
pub struct DenseEntry<'a, V> {
    slot: &'a mut Option<V>,
}

impl<'a, V> DenseEntry<'a, V> {
    /// The value, set to `v` first if there was none.
    pub fn or_insert(self, v: V) -> &'a mut V {
        self.slot.get_or_insert(v)
    }

    /// The value, set to the default first if there was none.
    pub fn or_default(self) -> &'a mut V
    where
        V: Default,
    {
        self.slot.get_or_insert_with(V::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::SandboxId;

    #[test]
    fn dense_map_behaves_like_a_hash_map() {
        let mut d: DenseMap<FunctionId, u32> = DenseMap::default();
        let mut h: HashMap<FunctionId, u32> = HashMap::new();
        assert!(d.get(&FunctionId(7)).is_none());
        // A fixed pseudo-random mix of every operation over a few keys.
        let mut x = 12345u64;
        for i in 0..2000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = FunctionId(((x >> 33) % 13) as u32);
            match (x >> 40) % 5 {
                0 => assert_eq!(d.insert(k, i), h.insert(k, i)),
                1 => assert_eq!(d.remove(&k), h.remove(&k)),
                2 => *d.entry(k).or_default() += 1,
                3 => *d.entry(k).or_insert(i) += 2,
                _ => {
                    if let Some(v) = d.get_mut(&k) {
                        *v += 3;
                    }
                    if let Some(v) = h.get_mut(&k) {
                        *v += 3;
                    }
                }
            }
            match (x >> 40) % 5 {
                2 => *h.entry(k).or_default() += 1,
                3 => *h.entry(k).or_insert(i) += 2,
                _ => {}
            }
            for f in 0..14 {
                let f = FunctionId(f);
                assert_eq!(d.get(&f), h.get(&f));
                assert_eq!(d.contains_key(&f), h.contains_key(&f));
            }
        }
    }

    #[test]
    fn maps_by_id_work_and_spread() {
        let mut m: IdMap<SandboxId, u64> = IdMap::default();
        for i in 0..1000 {
            m.insert(SandboxId(i), i * 2);
        }
        assert_eq!(m.get(&SandboxId(500)), Some(&1000));
        let top_bits: std::collections::BTreeSet<u64> = (0..64u64)
            .map(|i| {
                let mut h = IdHasher::default();
                h.write_u64(i);
                h.finish() >> 58
            })
            .collect();
        assert!(
            top_bits.len() > 30,
            "sequential ids spread over the top bits"
        );
    }
}
