//! Arithmetic the interposed calls need: the pitch of a managed 2-D allocation, and the free and
//! total memory reported against a budget.

use crate::cuda::{CuResult, CUDA_ERROR_INVALID_VALUE};

/// Row alignment of pitched allocations: the shim replaces `cuMemAllocPitch` with one managed
/// allocation whose rows start on this boundary (the texture pitch alignment of current GPUs is
/// at most 512 bytes).
pub const PITCH_ALIGN: u64 = 512;

/// `(pitch, total bytes)` of a `width`×`height` allocation of `element`-byte elements, or the
/// driver's error for arguments the real call rejects (element size not 4, 8 or 16; an empty
/// or overflowing size).
pub fn pitched(width: u64, height: u64, element: u32) -> Result<(u64, u64), CuResult> {
    if !matches!(element, 4 | 8 | 16) || width == 0 || height == 0 {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let pitch = width
        .checked_next_multiple_of(PITCH_ALIGN)
        .ok_or(CUDA_ERROR_INVALID_VALUE)?;
    let bytes = pitch.checked_mul(height).ok_or(CUDA_ERROR_INVALID_VALUE)?;
    Ok((pitch, bytes))
}

/// `(free, total)` as the shim reports them: with a budget, total is the budget and free what
/// this process has not yet allocated of it; without one, the driver's own figures.
pub fn reported_info(budget: Option<u64>, allocated: u64, real: (u64, u64)) -> (u64, u64) {
    match budget {
        Some(b) => (b.saturating_sub(allocated), b),
        None => real,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pitch_rounds_rows_up() {
        assert_eq!(pitched(1000, 3, 4), Ok((1024, 3072)));
        assert_eq!(pitched(512, 2, 16), Ok((512, 1024)));
        assert_eq!(pitched(1000, 3, 3), Err(CUDA_ERROR_INVALID_VALUE));
        assert_eq!(pitched(0, 3, 4), Err(CUDA_ERROR_INVALID_VALUE));
        assert_eq!(pitched(u64::MAX, 2, 4), Err(CUDA_ERROR_INVALID_VALUE));
    }

    #[test]
    fn budget_replaces_the_real_figures() {
        assert_eq!(reported_info(Some(100), 30, (7, 9)), (70, 100));
        assert_eq!(reported_info(Some(100), 300, (7, 9)), (0, 100));
        assert_eq!(reported_info(None, 30, (7, 9)), (7, 9));
    }

    proptest! {
        #[test]
        fn pitch_fits_the_rows(w in 1u64..1 << 20, h in 1u64..1 << 12, e in prop::sample::select(vec![4u32, 8, 16])) {
            let (pitch, bytes) = pitched(w, h, e).unwrap();
            prop_assert!(pitch >= w && pitch < w + PITCH_ALIGN);
            prop_assert_eq!(pitch % PITCH_ALIGN, 0);
            prop_assert_eq!(bytes, pitch * h);
        }

        #[test]
        fn reported_free_never_exceeds_total(b in proptest::option::of(any::<u64>()), a in any::<u64>(), f in any::<u64>(), t in any::<u64>()) {
            let (free, total) = reported_info(b, a, (f.min(t), t));
            prop_assert!(free <= total);
        }
    }
}
