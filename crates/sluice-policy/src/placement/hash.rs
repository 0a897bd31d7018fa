//! The stable hash behind the ring: the same bytes give the same 64-bit value on every machine,
//! in every process and in every build, so replicas that see the same membership build the same
//! ring. (`std`'s `DefaultHasher` is seeded at random per process and must never be used here.)
//!
//! The hash is FNV-1a 64 over the bytes, then the MurmurHash3 `fmix64` finaliser, which spreads
//! FNV's weak high bits (short, similar inputs such as `(bin, 0)`, `(bin, 1)` land far apart).
//! Owns [`StableHasher`], [`Key`] and the [`BinId`] trait with its implementations.

use sluice_core::GpuId;
use std::fmt::Debug;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A streaming stable hasher: FNV-1a 64, finalised with `fmix64`.
#[derive(Clone, Debug)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(FNV_OFFSET)
    }
}

impl StableHasher {
    /// A hasher with nothing written yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    /// Feeds an integer as 8 little-endian bytes (the same on every platform).
    pub fn write_u64(&mut self, x: u64) {
        self.write(&x.to_le_bytes());
    }

    /// The finished hash.
    pub fn finish(&self) -> u64 {
        fmix64(self.0)
    }
}

/// MurmurHash3's 64-bit finaliser: a bijection that makes every input bit affect every output bit.
pub(super) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The stable hash of `bytes`.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = StableHasher::new();
    h.write(bytes);
    h.finish()
}

/// What is placed: a point on the ring (a function, hashed from its name or id).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub u64);

impl Key {
    /// The key of a name (a function's name in the cluster).
    pub fn of_str(name: &str) -> Key {
        Key(stable_hash(name.as_bytes()))
    }

    /// The key of a number (a function's dense id inside one worker).
    pub fn of_u64(x: u64) -> Key {
        let mut h = StableHasher::new();
        h.write_u64(x);
        Key(h.finish())
    }
}

/// A bin's identity: a GPU inside a worker, a worker inside a cluster. Ids are hashed stably onto
/// the ring (virtual node `i` of bin `b` sits at `hash(bytes(b), i)`) and ordered (the order breaks
/// ties between equal ring points and fixes the bins' layout, so neither depends on the order in
/// which bins joined).
pub trait BinId: Clone + Ord + Debug {
    /// Feeds the id's identifying bytes; equal ids must feed equal bytes, on every machine.
    fn feed(&self, h: &mut StableHasher);
}

impl BinId for u16 {
    fn feed(&self, h: &mut StableHasher) {
        h.write_u64(u64::from(*self));
    }
}

impl BinId for u32 {
    fn feed(&self, h: &mut StableHasher) {
        h.write_u64(u64::from(*self));
    }
}

impl BinId for u64 {
    fn feed(&self, h: &mut StableHasher) {
        h.write_u64(*self);
    }
}

impl BinId for String {
    fn feed(&self, h: &mut StableHasher) {
        h.write(self.as_bytes());
    }
}

impl BinId for GpuId {
    fn feed(&self, h: &mut StableHasher) {
        h.write_u64(u64::from(self.0));
    }
}

/// The ring point of virtual node `i` of bin `id`: the id's bytes, a separator, then `i`.
pub(super) fn vnode_point<B: BinId>(id: &B, i: u32) -> u64 {
    let mut h = StableHasher::new();
    id.feed(&mut h);
    h.write(&[0xff]);
    h.write_u64(u64::from(i));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_core_matches_reference_vectors() {
        // FNV-1a 64 reference values, before the finaliser.
        let raw = |b: &[u8]| {
            let mut h = StableHasher::new();
            h.write(b);
            h.0
        };
        assert_eq!(raw(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(raw(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(raw(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn hashes_are_pinned() {
        // Changing the hash moves every function in every deployed cluster: these values are a
        // compatibility promise, not an implementation detail.
        assert_eq!(stable_hash(b""), fmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(Key::of_str("resnet"), Key::of_str("resnet"));
        assert_ne!(Key::of_str("resnet"), Key::of_str("resnet50"));
        assert_eq!(vnode_point(&GpuId(3), 7), vnode_point(&3u16, 7));
        assert_eq!(vnode_point(&"w1".to_string(), 0), 0x9c12_c83a_e9d3_348f);
    }

    #[test]
    fn nearby_inputs_spread_over_the_whole_range() {
        let points: Vec<u64> = (0..64).map(|i| vnode_point(&0u32, i)).collect();
        let high_halves = points.iter().filter(|&&p| p >= 1 << 63).count();
        assert!((20..=44).contains(&high_halves), "{high_halves} of 64");
    }
}
