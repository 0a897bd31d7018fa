//! The interposed driver entry points, exported under the driver's names. Each has the C
//! signature and the contract of the call it replaces (CUDA 12 `cuda.h`):
//!
//! - `cuMemAlloc_v2`, `cuMemAllocPitch_v2`, `cuMemAllocAsync` (and `_ptsz`): a managed
//!   allocation (`cuMemAllocManaged(…, CU_MEM_ATTACH_GLOBAL)`), recorded. Pitched ones get
//!   512-byte aligned rows; asynchronous ones are ready at once, which satisfies stream order.
//! - `cuMemFree_v2`; `cuMemFreeAsync` (and `_ptsz`), which for memory the shim allocated waits
//!   for the stream and frees it (managed memory has no stream-ordered free).
//! - `cuMemGetInfo_v2`: the driver's figures, replaced by the budget ones when one is set.
//! - the legacy 32-bit names (`cuMemAlloc`, `cuMemAllocPitch`, `cuMemFree`, `cuMemGetInfo`):
//!   a 32-bit pointer cannot hold a managed allocation, so these reach the driver unchanged and
//!   are only recorded (`managed = false`: counted, never prefetched); `cuMemGetInfo` reports
//!   the budget clamped to 32 bits.
//! - `cuGetProcAddress` and `cuGetProcAddress_v2`: the driver's answer, with the shim's entry
//!   point substituted for the names above ([`crate::procaddr`]).
//!
//! Without a driver every call fails with `CUDA_ERROR_NOT_INITIALIZED`, as a missing library
//! would make it fail.
// The entry points keep the driver's (camel-case) symbol names.
#![allow(non_snake_case)]

use crate::cuda::*;
use crate::driver::{self, Driver};
use crate::{procaddr, sizing, state};
use std::ffi::{c_char, c_int, c_uint, c_void};

/// The entry points the shim hands out in place of the driver's.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Export {
    /// [`cuMemAlloc_v2`].
    MemAllocV2,
    /// [`cuMemAlloc`] (legacy, 32-bit).
    MemAllocV1,
    /// [`cuMemAllocPitch_v2`].
    MemAllocPitchV2,
    /// [`cuMemAllocPitch`] (legacy, 32-bit).
    MemAllocPitchV1,
    /// [`cuMemAllocAsync`].
    MemAllocAsync,
    /// [`cuMemAllocAsync_ptsz`] (per-thread default stream).
    MemAllocAsyncPtsz,
    /// [`cuMemFree_v2`].
    MemFreeV2,
    /// [`cuMemFree`] (legacy, 32-bit).
    MemFreeV1,
    /// [`cuMemFreeAsync`].
    MemFreeAsync,
    /// [`cuMemFreeAsync_ptsz`] (per-thread default stream).
    MemFreeAsyncPtsz,
    /// [`cuMemGetInfo_v2`].
    MemGetInfoV2,
    /// [`cuMemGetInfo`] (legacy, 32-bit).
    MemGetInfoV1,
    /// [`cuGetProcAddress`] (pre-12.0 signature).
    GetProcAddressV1,
    /// [`cuGetProcAddress_v2`] (CUDA 12 signature).
    GetProcAddressV2,
}

const BY_SYMBOL: [(&[u8], Export); 14] = [
    (b"cuMemAlloc_v2", Export::MemAllocV2),
    (b"cuMemAlloc", Export::MemAllocV1),
    (b"cuMemAllocPitch_v2", Export::MemAllocPitchV2),
    (b"cuMemAllocPitch", Export::MemAllocPitchV1),
    (b"cuMemAllocAsync", Export::MemAllocAsync),
    (b"cuMemAllocAsync_ptsz", Export::MemAllocAsyncPtsz),
    (b"cuMemFree_v2", Export::MemFreeV2),
    (b"cuMemFree", Export::MemFreeV1),
    (b"cuMemFreeAsync", Export::MemFreeAsync),
    (b"cuMemFreeAsync_ptsz", Export::MemFreeAsyncPtsz),
    (b"cuMemGetInfo_v2", Export::MemGetInfoV2),
    (b"cuMemGetInfo", Export::MemGetInfoV1),
    (b"cuGetProcAddress", Export::GetProcAddressV1),
    (b"cuGetProcAddress_v2", Export::GetProcAddressV2),
];

impl Export {
    /// The entry point exported under exactly this symbol name.
    pub fn by_symbol(name: &[u8]) -> Option<Export> {
        // Every name starts with "cu": most lookups end at the first byte.
        if !name.starts_with(b"cu") {
            return None;
        }
        BY_SYMBOL.iter().find(|(n, _)| *n == name).map(|&(_, e)| e)
    }

    /// The address of the shim's function.
    pub fn address(self) -> usize {
        match self {
            Export::MemAllocV2 => cuMemAlloc_v2 as MemAllocV2 as usize,
            Export::MemAllocV1 => cuMemAlloc as MemAllocV1 as usize,
            Export::MemAllocPitchV2 => cuMemAllocPitch_v2 as MemAllocPitchV2 as usize,
            Export::MemAllocPitchV1 => cuMemAllocPitch as MemAllocPitchV1 as usize,
            Export::MemAllocAsync => cuMemAllocAsync as MemAllocAsync as usize,
            Export::MemAllocAsyncPtsz => cuMemAllocAsync_ptsz as MemAllocAsync as usize,
            Export::MemFreeV2 => cuMemFree_v2 as MemFreeV2 as usize,
            Export::MemFreeV1 => cuMemFree as MemFreeV1 as usize,
            Export::MemFreeAsync => cuMemFreeAsync as MemFreeAsync as usize,
            Export::MemFreeAsyncPtsz => cuMemFreeAsync_ptsz as MemFreeAsync as usize,
            Export::MemGetInfoV2 => cuMemGetInfo_v2 as MemGetInfoV2 as usize,
            Export::MemGetInfoV1 => cuMemGetInfo as MemGetInfoV1 as usize,
            Export::GetProcAddressV1 => cuGetProcAddress as GetProcAddressV1 as usize,
            Export::GetProcAddressV2 => cuGetProcAddress_v2 as GetProcAddressV2 as usize,
        }
    }
}

/// A managed allocation of `bytes` into `*dptr`, recorded; a driver without managed memory
/// gets the `fallback` call instead (recorded as not managed).
///
/// # Safety
/// `dptr` is null (refused) or valid for writes of one `CuDevicePtr`, as the allocation calls'
/// contract requires.
unsafe fn managed(
    d: &Driver,
    dptr: *mut CuDevicePtr,
    bytes: usize,
    fallback: Option<MemAllocV2>,
) -> CuResult {
    if dptr.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let (code, is_managed) = match (d.mem_alloc_managed, fallback) {
        // SAFETY: `m` is the driver's `cuMemAllocManaged` (looked up with its signature) and
        // `dptr` is non-null and writable by the caller's promise.
        (Some(m), _) => (unsafe { m(dptr, bytes, CU_MEM_ATTACH_GLOBAL) }, true),
        // SAFETY: `f` is a driver allocation entry point of this signature; `dptr` as above.
        (None, Some(f)) => (unsafe { f(dptr, bytes) }, false),
        (None, None) => return CUDA_ERROR_NOT_INITIALIZED,
    };
    if code == CUDA_SUCCESS {
        // SAFETY: `dptr` is non-null and valid, and on success the driver wrote the address.
        let ptr = unsafe { *dptr };
        state::get().record(d, ptr, bytes as u64, is_managed);
    }
    code
}

/// Frees `ptr` with `free`, forgetting it first and restoring the record if the free fails.
fn forget_then<F: FnOnce() -> CuResult>(ptr: u64, free: F) -> CuResult {
    let st = state::get();
    let record = st.forget(ptr);
    let code = free();
    if code != CUDA_SUCCESS {
        if let Some(a) = record {
            st.restore(ptr, a);
        }
    }
    code
}

/// `cuMemAlloc_v2`: allocates `bytesize` bytes of managed memory (`CU_MEM_ATTACH_GLOBAL`) into
/// `*dptr` and records it; without managed memory in the driver, the real `cuMemAlloc_v2`
/// (recorded as not managed).
///
/// # Safety
/// As the driver's: `dptr` is null (refused with `CUDA_ERROR_INVALID_VALUE`) or valid for
/// writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CuDevicePtr, bytesize: usize) -> CuResult {
    let Some(d) = driver::get() else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    // SAFETY: `dptr` is passed on under this function's contract, which is `managed`'s; the
    // fallback is the driver's `cuMemAlloc_v2`, of the signature `managed` calls it with.
    unsafe { managed(d, dptr, bytesize, d.mem_alloc_v2) }
}

/// `cuMemAllocPitch_v2`: one managed allocation of `height` rows of `width` bytes, each row
/// starting on a [`sizing::PITCH_ALIGN`] boundary; the row pitch goes to `*pitch`. The element
/// size must be 4, 8 or 16, as for the real call.
///
/// # Safety
/// As the driver's: `dptr` and `pitch` are null (refused) or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocPitch_v2(
    dptr: *mut CuDevicePtr,
    pitch: *mut usize,
    width: usize,
    height: usize,
    element: c_uint,
) -> CuResult {
    let Some(d) = driver::get() else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    if pitch.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let (p, bytes) = match sizing::pitched(width as u64, height as u64, element) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // SAFETY: `dptr` is passed on under this function's contract, which is `managed`'s.
    let code = unsafe { managed(d, dptr, bytes as usize, None) };
    if code == CUDA_SUCCESS {
        // SAFETY: `pitch` is non-null (checked above) and valid for writes by the contract.
        unsafe { *pitch = p as usize };
    }
    code
}

/// [`cuMemAllocAsync`] and its `_ptsz` variant (`ptsz`: call the driver's `_ptsz` function).
///
/// # Safety
/// As [`cuMemAllocAsync`].
unsafe fn alloc_async(
    dptr: *mut CuDevicePtr,
    bytes: usize,
    stream: CuStream,
    ptsz: bool,
) -> CuResult {
    let Some(d) = driver::get() else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    let real = if ptsz {
        d.mem_alloc_async_ptsz
    } else {
        d.mem_alloc_async
    };
    match (d.mem_alloc_managed, real) {
        // SAFETY: `f` is the driver's `cuMemAllocAsync` (or `_ptsz`), given the caller's
        // arguments unchanged under the same contract.
        (None, Some(f)) => unsafe { f(dptr, bytes, stream) },
        // SAFETY: `dptr` is passed on under the caller's contract, which is `managed`'s.
        _ => unsafe { managed(d, dptr, bytes, None) },
    }
}

/// `cuMemAllocAsync`: a recorded managed allocation, usable at once (so in stream order for
/// `stream`); the real stream-ordered call only when the driver has no managed memory.
///
/// # Safety
/// As the driver's: `dptr` is null (refused) or valid for writes; `stream` is a stream of the
/// current context or a default-stream handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocAsync(
    dptr: *mut CuDevicePtr,
    bytesize: usize,
    stream: CuStream,
) -> CuResult {
    // SAFETY: the arguments are passed on under this function's contract, which is the same.
    unsafe { alloc_async(dptr, bytesize, stream, false) }
}

/// `cuMemAllocAsync_ptsz`: [`cuMemAllocAsync`] for callers built with the per-thread default
/// stream.
///
/// # Safety
/// As [`cuMemAllocAsync`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocAsync_ptsz(
    dptr: *mut CuDevicePtr,
    bytesize: usize,
    stream: CuStream,
) -> CuResult {
    // SAFETY: the arguments are passed on under this function's contract, which is the same.
    unsafe { alloc_async(dptr, bytesize, stream, true) }
}

/// `cuMemFree_v2`: frees `ptr` with the driver and forgets it (the record is restored if the
/// free fails).
///
/// # Safety
/// As the driver's: `ptr` is a live allocation of the current context, not in use by pending
/// work.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFree_v2(ptr: CuDevicePtr) -> CuResult {
    let Some(free) = driver::get().and_then(|d| d.mem_free_v2) else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    // SAFETY: the driver's `cuMemFree_v2` on the caller's pointer, under the caller's contract.
    forget_then(ptr, || unsafe { free(ptr) })
}

/// [`cuMemFreeAsync`] and its `_ptsz` variant (`ptsz`: the caller uses the per-thread default
/// stream).
///
/// # Safety
/// As [`cuMemFreeAsync`].
unsafe fn free_async(ptr: CuDevicePtr, stream: CuStream, ptsz: bool) -> CuResult {
    let Some(d) = driver::get() else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    if !state::get().knows(ptr) {
        let real = if ptsz {
            d.mem_free_async_ptsz
        } else {
            d.mem_free_async
        };
        // SAFETY: the driver's `cuMemFreeAsync` (or `_ptsz`) with the caller's arguments,
        // under the same contract.
        return real.map_or(CUDA_ERROR_NOT_INITIALIZED, |f| unsafe { f(ptr, stream) });
    }
    let (Some(sync), Some(free)) = (d.stream_synchronize, d.mem_free_v2) else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    // The null stream of a per-thread-default-stream caller is its own thread's stream.
    let stream = if ptsz && stream.is_null() {
        CU_STREAM_PER_THREAD as CuStream
    } else {
        stream
    };
    // SAFETY: `stream` is the caller's stream of the current context or a default-stream
    // handle (`CU_STREAM_PER_THREAD` is one), as `cuStreamSynchronize` requires.
    let code = unsafe { sync(stream) };
    if code != CUDA_SUCCESS {
        return code;
    }
    // SAFETY: `ptr` is a live allocation the shim recorded (checked above), and the work queued
    // on `stream` before this free, which the stream-ordered free had to wait for, is complete.
    forget_then(ptr, || unsafe { free(ptr) })
}

/// `cuMemFreeAsync`: for memory the shim allocated, waits for `stream` then frees it at once
/// (managed memory has no stream-ordered free); other memory goes to the real call.
///
/// # Safety
/// As the driver's: `ptr` is a live allocation and `stream` a stream of the current context or
/// a default-stream handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeAsync(ptr: CuDevicePtr, stream: CuStream) -> CuResult {
    // SAFETY: the arguments are passed on under this function's contract, which is the same.
    unsafe { free_async(ptr, stream, false) }
}

/// `cuMemFreeAsync_ptsz`: [`cuMemFreeAsync`] for callers built with the per-thread default
/// stream; a null stream means the calling thread's default stream.
///
/// # Safety
/// As [`cuMemFreeAsync`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeAsync_ptsz(ptr: CuDevicePtr, stream: CuStream) -> CuResult {
    // SAFETY: the arguments are passed on under this function's contract, which is the same.
    unsafe { free_async(ptr, stream, true) }
}

/// `cuMemGetInfo_v2`: the driver's free and total device memory, bytes; with a budget set,
/// `total` is the budget and `free` the part of it this process has not allocated.
///
/// # Safety
/// As the driver's: `free` and `total` are null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CuResult {
    let Some(real) = driver::get().and_then(|d| d.mem_get_info_v2) else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    // SAFETY: the driver's `cuMemGetInfo_v2` with the caller's pointers, under the same contract.
    let code = unsafe { real(free, total) };
    if code == CUDA_SUCCESS && !free.is_null() && !total.is_null() {
        let st = state::get();
        // SAFETY: both pointers are non-null and valid by the contract, and the driver has just
        // written them (it succeeded).
        let now = unsafe { (*free as u64, *total as u64) };
        let (f, t) = sizing::reported_info(st.budget(), st.registry().totals().bytes, now);
        // SAFETY: both pointers are non-null and valid for writes by the contract.
        unsafe {
            *free = f as usize;
            *total = t as usize;
        }
    }
    code
}

/// Legacy `cuMemAlloc` (32-bit pointer): forwarded to the driver unchanged (a 32-bit pointer
/// cannot hold managed memory) and recorded as not managed.
///
/// # Safety
/// As the driver's: `dptr` is null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAlloc(dptr: *mut CuDevicePtrV1, bytesize: c_uint) -> CuResult {
    let Some(d) = driver::get() else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    let Some(real) = d.mem_alloc_v1 else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    // SAFETY: the driver's legacy `cuMemAlloc` with the caller's arguments, same contract.
    let code = unsafe { real(dptr, bytesize) };
    if code == CUDA_SUCCESS && !dptr.is_null() {
        // SAFETY: `dptr` is non-null and valid by the contract, and the driver wrote it.
        let ptr = unsafe { *dptr };
        state::get().record(d, u64::from(ptr), u64::from(bytesize), false);
    }
    code
}

/// Legacy `cuMemAllocPitch` (32-bit): forwarded to the driver unchanged and recorded as
/// `pitch × height` bytes, not managed.
///
/// # Safety
/// As the driver's: `dptr` and `pitch` are null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocPitch(
    dptr: *mut CuDevicePtrV1,
    pitch: *mut c_uint,
    width: c_uint,
    height: c_uint,
    element: c_uint,
) -> CuResult {
    let Some(d) = driver::get() else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    let Some(real) = d.mem_alloc_pitch_v1 else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    // SAFETY: the driver's legacy `cuMemAllocPitch` with the caller's arguments, same contract.
    let code = unsafe { real(dptr, pitch, width, height, element) };
    if code == CUDA_SUCCESS && !dptr.is_null() && !pitch.is_null() {
        // SAFETY: both pointers are non-null and valid by the contract, and the driver wrote
        // both.
        let (ptr, row) = unsafe { (*dptr, *pitch) };
        let bytes = u64::from(row) * u64::from(height);
        state::get().record(d, u64::from(ptr), bytes, false);
    }
    code
}

/// Legacy `cuMemFree` (32-bit pointer): forwarded to the driver, the record forgotten (and
/// restored if the free fails).
///
/// # Safety
/// As the driver's: `ptr` is a live allocation of the current context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFree(ptr: CuDevicePtrV1) -> CuResult {
    let Some(free) = driver::get().and_then(|d| d.mem_free_v1) else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    // SAFETY: the driver's legacy `cuMemFree` on the caller's pointer, same contract.
    forget_then(u64::from(ptr), || unsafe { free(ptr) })
}

/// Legacy `cuMemGetInfo` (32-bit figures): the driver's, or with a budget set the budget's,
/// each clamped to `u32::MAX`.
///
/// # Safety
/// As the driver's: `free` and `total` are null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemGetInfo(free: *mut c_uint, total: *mut c_uint) -> CuResult {
    let Some(real) = driver::get().and_then(|d| d.mem_get_info_v1) else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    // SAFETY: the driver's legacy `cuMemGetInfo` with the caller's pointers, same contract.
    let code = unsafe { real(free, total) };
    if code == CUDA_SUCCESS && !free.is_null() && !total.is_null() {
        let st = state::get();
        if let Some(budget) = st.budget() {
            let (f, t) = sizing::reported_info(Some(budget), st.registry().totals().bytes, (0, 0));
            let clamp = |v: u64| c_uint::try_from(v).unwrap_or(c_uint::MAX);
            // SAFETY: both pointers are non-null and valid for writes by the contract.
            unsafe {
                *free = clamp(f);
                *total = clamp(t);
            }
        }
    }
    code
}

/// `cuGetProcAddress` (pre-12.0 signature): the driver's answer, with the shim's entry point
/// substituted where it replaces the symbol ([`procaddr::choose`]).
///
/// # Safety
/// As the driver's: `symbol` is a C string and `pfn` valid for reads and writes (or either null,
/// which the driver refuses).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetProcAddress(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    cuda_version: c_int,
    flags: u64,
) -> CuResult {
    let Some(d) = driver::get() else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    let Some(real) = d.get_proc_address_v1 else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    // SAFETY: the driver's `cuGetProcAddress` with the caller's arguments, same contract.
    let code = unsafe { real(symbol, pfn, cuda_version, flags) };
    if code == CUDA_SUCCESS {
        // SAFETY: the driver accepted `symbol` and `pfn`, so `symbol` is a C string and `pfn`
        // valid for reads and writes; `substitute` also tolerates null for either.
        unsafe { procaddr::substitute(d, symbol, pfn, cuda_version) };
    }
    code
}

/// `cuGetProcAddress_v2` (CUDA 12 signature, with `symbol_status`): as [`cuGetProcAddress`].
///
/// # Safety
/// As the driver's: `symbol` is a C string, `pfn` valid for reads and writes, `symbol_status`
/// null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetProcAddress_v2(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    cuda_version: c_int,
    flags: u64,
    symbol_status: *mut c_int,
) -> CuResult {
    let Some(d) = driver::get() else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    let Some(real) = d.get_proc_address_v2 else {
        return CUDA_ERROR_NOT_INITIALIZED;
    };
    // SAFETY: the driver's `cuGetProcAddress_v2` with the caller's arguments, same contract.
    let code = unsafe { real(symbol, pfn, cuda_version, flags, symbol_status) };
    if code == CUDA_SUCCESS {
        // SAFETY: the driver accepted `symbol` and `pfn`, so `symbol` is a C string and `pfn`
        // valid for reads and writes; `substitute` also tolerates null for either.
        unsafe { procaddr::substitute(d, symbol, pfn, cuda_version) };
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_maps_to_a_distinct_entry_point() {
        let mut seen = std::collections::HashSet::new();
        for (name, e) in BY_SYMBOL {
            assert_eq!(Export::by_symbol(name), Some(e));
            assert!(seen.insert(e.address()), "{e:?} shares an address");
        }
        assert_eq!(Export::by_symbol(b"cuInit"), None);
        assert_eq!(Export::by_symbol(b"malloc"), None);
    }
}
