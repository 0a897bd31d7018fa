//! The warm pool's caps, derived from the resources: how many sandboxes each device keeps and
//! how many it may be creating at once. Worker-wide numbers in the configuration
//! (`keepalive.max_sandboxes`, `keepalive.max_concurrent_creates`) override the derivation.
//!
//! - Sandboxes kept per device: `⌊memory_factor × device memory / mean sandbox memory⌋`, at
//!   least D (one per token) and at most [`MAX_PER_DEVICE`]; the mean is over the registered
//!   functions that hold device memory. A device keeps sandboxes whose memory adds up to
//!   `memory_factor` times its own: the resident ones plus those pushed to host memory (a GPU
//!   server's host memory is several times its GPU memory). Without any function memory (CPU
//!   functions, the worker's CPU queue) a device keeps [`PER_TOKEN_WITHOUT_MEMORY`] per token.
//! - Sandboxes being created per device: [`CREATES_PER_TOKEN`] × D. A cold start does not hold
//!   a token while its sandbox is created (`slots.cold_start_holds_token` off, the default), so
//!   only this bounds the host work of starting sandboxes beside the D running invocations; it
//!   also caps prewarming. Where cold starts hold their token: D, the bound the tokens impose.
//!
//! Both grow with the number of devices and their memory, which a worker-wide constant does not.

use super::KeepAliveParams;

/// Most sandboxes one device keeps, whatever its memory.
pub const MAX_PER_DEVICE: usize = 4096;

/// Sandboxes kept per device token when no function holds device memory.
pub const PER_TOKEN_WITHOUT_MEMORY: usize = 32;

/// Sandboxes being created at once per device token, when cold starts hold no token. With 2,
/// MQFQ-Sticky's p99 on the Ilúvatar trace meets 10 s on 3 GPUs instead of 4 (docs/mqfq-results.md).
pub const CREATES_PER_TOKEN: usize = 2;

/// The pool's caps: worker-wide ones (the configuration's overrides) and per-device ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    /// Most sandboxes in the whole pool (`None`: only the per-device caps apply).
    pub max_sandboxes: Option<usize>,
    /// Most sandboxes being created at once in the whole pool (`None`: per device only).
    pub max_creates: Option<usize>,
    /// Per device (by index), most sandboxes kept on it.
    pub sandboxes_per_device: Vec<usize>,
    /// Most sandboxes being created at once on one device.
    pub creates_per_device: usize,
}

impl PoolLimits {
    /// The caps for devices of `device_memory` bytes each with `tokens` tokens each, when the
    /// registered functions' sandboxes hold `mean_sandbox_bytes` on average (`None` or 0 when
    /// none holds device memory), and whether a cold start holds its token while its sandbox is
    /// created. An override in `params` replaces the derived cap it names.
    pub fn derive(
        params: &KeepAliveParams,
        tokens: u32,
        device_memory: &[u64],
        mean_sandbox_bytes: Option<u64>,
        cold_start_holds_token: bool,
    ) -> PoolLimits {
        let d = tokens.max(1) as usize;
        let per_device = |mem: u64| match mean_sandbox_bytes.filter(|&m| m > 0) {
            Some(mean) => {
                let fit = params.memory_factor * mem as f64 / mean as f64;
                // `as` saturates: a huge CPU "memory" lands on the cap, not on garbage.
                (fit.floor() as usize).clamp(d.min(MAX_PER_DEVICE), MAX_PER_DEVICE)
            }
            None => (d * PER_TOKEN_WITHOUT_MEMORY).min(MAX_PER_DEVICE),
        };
        let sandboxes_per_device = match params.max_sandboxes {
            Some(_) => vec![usize::MAX; device_memory.len()],
            None => device_memory.iter().map(|&m| per_device(m)).collect(),
        };
        PoolLimits {
            max_sandboxes: params.max_sandboxes,
            max_creates: params.max_concurrent_creates,
            sandboxes_per_device,
            creates_per_device: match params.max_concurrent_creates {
                Some(_) => usize::MAX,
                None if cold_start_holds_token => d,
                None => CREATES_PER_TOKEN * d,
            },
        }
    }

    /// No cap at all (for tests and tools that manage the pool by hand).
    pub fn unlimited() -> PoolLimits {
        PoolLimits {
            max_sandboxes: None,
            max_creates: None,
            sandboxes_per_device: Vec::new(),
            creates_per_device: usize::MAX,
        }
    }

    /// The cap on sandboxes kept on device `i` (unlimited for a device not listed).
    pub fn sandboxes_on(&self, i: usize) -> usize {
        self.sandboxes_per_device
            .get(i)
            .copied()
            .unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn params() -> KeepAliveParams {
        KeepAliveParams::default()
    }

    #[test]
    fn caps_grow_with_devices_and_memory() {
        let one = PoolLimits::derive(&params(), 2, &[24 * GIB], Some(GIB + GIB / 2), true);
        assert_eq!(one.sandboxes_per_device, vec![64]);
        assert_eq!((one.max_sandboxes, one.max_creates), (None, None));
        assert_eq!(
            one.creates_per_device, 2,
            "D where a cold start holds its token"
        );
        let sixteen = PoolLimits::derive(&params(), 2, &[24 * GIB; 16], Some(GIB + GIB / 2), false);
        assert_eq!(sixteen.sandboxes_per_device.iter().sum::<usize>(), 16 * 64);
        assert_eq!(
            sixteen.creates_per_device,
            2 * CREATES_PER_TOKEN,
            "else twice D"
        );
        let big = PoolLimits::derive(&params(), 2, &[80 * GIB], Some(GIB + GIB / 2), true);
        assert!(big.sandboxes_on(0) > 200);
    }

    #[test]
    fn floors_caps_and_fallbacks() {
        // Huge functions: still one sandbox per token.
        let l = PoolLimits::derive(&params(), 4, &[GIB], Some(100 * GIB), true);
        assert_eq!(l.sandboxes_on(0), 4);
        // No function memory: a count per token; a CPU "device" of huge memory is capped.
        let l = PoolLimits::derive(&params(), 2, &[u64::MAX / 4], None, true);
        assert_eq!(l.sandboxes_on(0), 2 * PER_TOKEN_WITHOUT_MEMORY);
        let l = PoolLimits::derive(&params(), 2, &[u64::MAX / 4], Some(1), true);
        assert_eq!(l.sandboxes_on(0), MAX_PER_DEVICE);
        assert_eq!(
            l.sandboxes_on(5),
            usize::MAX,
            "an unknown device is not capped"
        );
    }

    #[test]
    fn overrides_replace_the_derivation() {
        let p = KeepAliveParams {
            max_sandboxes: Some(64),
            max_concurrent_creates: Some(4),
            ..params()
        };
        let l = PoolLimits::derive(&p, 2, &[24 * GIB; 4], Some(GIB), false);
        assert_eq!((l.max_sandboxes, l.max_creates), (Some(64), Some(4)));
        assert_eq!(l.sandboxes_on(3), usize::MAX);
        assert_eq!(l.creates_per_device, usize::MAX);
    }
}
