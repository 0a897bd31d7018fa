//! The live allocations of this process: pointer → size, context, and whether the shim made it
//! managed (only managed memory can be prefetched or advised). Pure bookkeeping; the locking is
//! in [`crate::state`].

use std::collections::BTreeMap;

/// One live allocation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// Size, bytes (for a pitched allocation, pitch × height).
    pub bytes: u64,
    /// The `CUcontext` current when it was made, as an address.
    pub context: usize,
    /// Whether the shim made it managed memory (only then is it prefetched or advised);
    /// false for legacy 32-bit allocations and the non-managed fallbacks.
    pub managed: bool,
}

/// Totals over the live allocations.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Bytes of all live allocations; what the budget is charged.
    pub bytes: u64,
    /// Number of live allocations.
    pub count: u64,
    /// Bytes of the managed ones among them (≤ `bytes`).
    pub managed_bytes: u64,
}

/// The managed allocations of one context, as (pointer, bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextAllocations {
    /// The `CUcontext`, as an address.
    pub context: usize,
    /// `(device pointer, bytes)` of each managed allocation made in it, ascending by pointer.
    pub ranges: Vec<(u64, u64)>,
}

/// Live allocations by pointer.
#[derive(Debug, Default)]
pub struct Registry {
    live: BTreeMap<u64, Allocation>,
    totals: Totals,
}

impl Registry {
    /// Records an allocation; a pointer recorded twice (the driver reused it without the shim
    /// seeing the free) replaces the old entry.
    pub fn insert(&mut self, ptr: u64, a: Allocation) {
        if let Some(old) = self.live.insert(ptr, a) {
            self.sub(&old);
        }
        self.totals.bytes += a.bytes;
        self.totals.count += 1;
        if a.managed {
            self.totals.managed_bytes += a.bytes;
        }
    }

    /// Forgets an allocation; `None` if the shim did not record it.
    pub fn remove(&mut self, ptr: u64) -> Option<Allocation> {
        let a = self.live.remove(&ptr)?;
        self.sub(&a);
        Some(a)
    }

    fn sub(&mut self, a: &Allocation) {
        self.totals.bytes -= a.bytes;
        self.totals.count -= 1;
        if a.managed {
            self.totals.managed_bytes -= a.bytes;
        }
    }

    /// Whether `ptr` is a live allocation the shim recorded.
    pub fn contains(&self, ptr: u64) -> bool {
        self.live.contains_key(&ptr)
    }

    /// Totals over the live allocations, kept up to date on every insert and remove.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Managed allocations grouped by context, contexts and pointers in ascending order.
    pub fn managed_by_context(&self) -> Vec<ContextAllocations> {
        let mut out: BTreeMap<usize, Vec<(u64, u64)>> = BTreeMap::new();
        for (&ptr, a) in self.live.iter().filter(|(_, a)| a.managed) {
            out.entry(a.context).or_default().push((ptr, a.bytes));
        }
        out.into_iter()
            .map(|(context, ranges)| ContextAllocations { context, ranges })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Op {
        Alloc {
            ptr: u64,
            bytes: u64,
            ctx: usize,
            managed: bool,
        },
        Free {
            ptr: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..16, 1u64..1 << 30, 0usize..3, any::<bool>()).prop_map(
                |(ptr, bytes, ctx, managed)| Op::Alloc {
                    ptr,
                    bytes,
                    ctx,
                    managed
                }
            ),
            (0u64..16).prop_map(|ptr| Op::Free { ptr }),
        ]
    }

    proptest! {
        /// Totals always equal a recount of a plain map fed the same operations, and the
        /// per-context view lists exactly the managed allocations.
        #[test]
        fn totals_match_a_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut r = Registry::default();
            let mut model: HashMap<u64, Allocation> = HashMap::new();
            for o in ops {
                match o {
                    Op::Alloc { ptr, bytes, ctx, managed } => {
                        let a = Allocation { bytes, context: ctx, managed };
                        r.insert(ptr, a);
                        model.insert(ptr, a);
                    }
                    Op::Free { ptr } => {
                        prop_assert_eq!(r.remove(ptr), model.remove(&ptr));
                    }
                }
                let t = r.totals();
                prop_assert_eq!(t.count, model.len() as u64);
                prop_assert_eq!(t.bytes, model.values().map(|a| a.bytes).sum::<u64>());
                let managed: u64 = model.values().filter(|a| a.managed).map(|a| a.bytes).sum();
                prop_assert_eq!(t.managed_bytes, managed);
                let grouped: u64 = r.managed_by_context().iter()
                    .flat_map(|c| c.ranges.iter().map(|&(_, b)| b)).sum();
                prop_assert_eq!(grouped, managed);
            }
        }
    }

    #[test]
    fn groups_by_context_in_order() {
        let mut r = Registry::default();
        let a = |bytes, context, managed| Allocation {
            bytes,
            context,
            managed,
        };
        r.insert(30, a(3, 2, true));
        r.insert(10, a(1, 1, true));
        r.insert(20, a(2, 2, true));
        r.insert(40, a(4, 1, false));
        assert_eq!(
            r.managed_by_context(),
            vec![
                ContextAllocations {
                    context: 1,
                    ranges: vec![(10, 1)]
                },
                ContextAllocations {
                    context: 2,
                    ranges: vec![(20, 2), (30, 3)]
                },
            ]
        );
        assert!(r.contains(40));
        assert_eq!(r.remove(99), None);
    }
}
