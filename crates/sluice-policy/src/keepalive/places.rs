//! The pool's per-(function, device) index: for each function (by its dense id) a short list of
//! the devices where it has an entry, in device order. The same answers as a `BTreeMap` keyed by
//! `(function, device)`, with one vector access and a scan of a handful of devices instead of a
//! tree descent. A function on one device keeps that entry inline (no second allocation to
//! chase): in a simulated cluster of a thousand workers these lookups are cache misses.

use sluice_core::{FunctionId, GpuId};
use smallvec::SmallVec;

/// A function's entries; one device's is held inline.
type Devices<V> = SmallVec<[(GpuId, V); 1]>;

/// Values by `(function, device)`, iterable per function in device order.
#[derive(Clone, Debug)]
pub(super) struct PlaceMap<V> {
    funcs: Vec<Devices<V>>,
}

impl<V> Default for PlaceMap<V> {
    fn default() -> Self {
        PlaceMap { funcs: Vec::new() }
    }
}

impl<V> PlaceMap<V> {
    fn devices(&self, func: FunctionId) -> &[(GpuId, V)] {
        self.funcs.get(func.index()).map_or(&[], |d| d.as_slice())
    }

    /// The value at `(func, gpu)`.
    pub(super) fn get(&self, &(func, gpu): &(FunctionId, GpuId)) -> Option<&V> {
        let d = self.devices(func);
        d.iter().find(|(g, _)| *g == gpu).map(|(_, v)| v)
    }

    /// The value at `(func, gpu)`, to change.
    pub(super) fn get_mut(&mut self, &(func, gpu): &(FunctionId, GpuId)) -> Option<&mut V> {
        let d = self.funcs.get_mut(func.index())?;
        d.iter_mut().find(|(g, _)| *g == gpu).map(|(_, v)| v)
    }

    /// Removes and returns the value at `(func, gpu)`.
    pub(super) fn remove(&mut self, &(func, gpu): &(FunctionId, GpuId)) -> Option<V> {
        let d = self.funcs.get_mut(func.index())?;
        let i = d.iter().position(|(g, _)| *g == gpu)?;
        Some(d.remove(i).1)
    }

    /// The value at `(func, gpu)`, the default put there first if there was none.
    pub(super) fn or_default(&mut self, (func, gpu): (FunctionId, GpuId)) -> &mut V
    where
        V: Default,
    {
        let f = func.index();
        if self.funcs.len() <= f {
            self.funcs.resize_with(f + 1, SmallVec::new);
        }
        let d = &mut self.funcs[f];
        let i = match d.binary_search_by_key(&gpu, |(g, _)| *g) {
            Ok(i) => i,
            Err(i) => {
                d.insert(i, (gpu, V::default()));
                i
            }
        };
        &mut d[i].1
    }

    /// Whether `func` has any entry.
    pub(super) fn has(&self, func: FunctionId) -> bool {
        !self.devices(func).is_empty()
    }

    /// `func`'s entries, in device order.
    pub(super) fn of(&self, func: FunctionId) -> impl Iterator<Item = (GpuId, &V)> + '_ {
        self.devices(func).iter().map(|(g, v)| (*g, v))
    }

    /// Every entry, by function then device.
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = ((FunctionId, GpuId), &V)> + '_ {
        self.funcs
            .iter()
            .enumerate()
            .flat_map(|(f, d)| d.iter().map(move |(g, v)| ((FunctionId(f as u32), *g), v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn answers_like_a_btree_map() {
        let mut p: PlaceMap<u32> = PlaceMap::default();
        let mut b: BTreeMap<(FunctionId, GpuId), u32> = BTreeMap::new();
        let mut x = 3u64;
        for i in 0..5000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (
                FunctionId(((x >> 33) % 9) as u32),
                GpuId(((x >> 45) % 5) as u16),
            );
            match (x >> 20) % 4 {
                0 => *p.or_default(k) += i,
                1 => assert_eq!(p.remove(&k), b.remove(&k)),
                2 => {
                    if let Some(v) = p.get_mut(&k) {
                        *v += 1;
                    }
                }
                _ => {}
            }
            match (x >> 20) % 4 {
                0 => *b.entry(k).or_default() += i,
                2 => {
                    if let Some(v) = b.get_mut(&k) {
                        *v += 1;
                    }
                }
                _ => {}
            }
            assert_eq!(p.get(&k), b.get(&k));
            let f = k.0;
            let range = b.range((f, GpuId(0))..=(f, GpuId(u16::MAX)));
            assert!(p.of(f).eq(range.map(|(&(_, g), v)| (g, v))));
            assert_eq!(p.has(f), p.of(f).next().is_some());
            assert!(p.iter().eq(b.iter().map(|(k, v)| (*k, v))));
        }
    }
}
