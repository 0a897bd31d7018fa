//! Hash maps keyed by the policy layer's own dense ids (sandboxes, functions). The ids are
//! handed out by the scheduler, never taken from input, so a fast multiplicative hash is safe
//! and spares the hot path `std`'s SipHash (which showed in simulator profiles).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from an id to `V` with the [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

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

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::SandboxId;

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
