//! The real CUDA driver: `dlopen("libcuda.so.1")` once, on the first interposed call, and every
//! entry point the shim forwards to or uses looked up on that handle with glibc's `dlsym` (never
//! `RTLD_NEXT` on an interposed name, which could lead back into the shim). Each entry point is
//! optional: a driver that lacks one makes only the calls that need it fail.

use crate::cuda::*;
use crate::dlsym::real_dlsym;
use std::ffi::{c_void, CStr};
use std::sync::OnceLock;

/// The driver library the shim opens.
pub const LIBRARY: &CStr = c"libcuda.so.1";

/// Entry points of the real driver.
pub struct Driver {
    /// The `dlopen` handle of `libcuda.so.1`, as an address (kept so that `Driver` is `Send` and
    /// `Sync`); never closed, so it stays valid for the life of the process.
    handle: usize,
    /// `cuMemAlloc_v2`: the fallback allocation when the driver has no managed memory.
    pub mem_alloc_v2: Option<MemAllocV2>,
    /// Legacy `cuMemAlloc`, forwarded unchanged (32-bit pointers cannot hold managed memory).
    pub mem_alloc_v1: Option<MemAllocV1>,
    /// Legacy `cuMemAllocPitch`, forwarded unchanged.
    pub mem_alloc_pitch_v1: Option<MemAllocPitchV1>,
    /// `cuMemAllocManaged`: what every 64-bit allocation becomes when the driver has it.
    pub mem_alloc_managed: Option<MemAllocManaged>,
    /// `cuMemAllocAsync`, used only when the driver has no managed memory.
    pub mem_alloc_async: Option<MemAllocAsync>,
    /// `cuMemAllocAsync_ptsz` (per-thread default stream), likewise.
    pub mem_alloc_async_ptsz: Option<MemAllocAsync>,
    /// `cuMemFree_v2`: every 64-bit free, and the stream-ordered frees of the shim's own
    /// allocations.
    pub mem_free_v2: Option<MemFreeV2>,
    /// Legacy `cuMemFree`, forwarded unchanged.
    pub mem_free_v1: Option<MemFreeV1>,
    /// `cuMemFreeAsync`, for memory the shim did not allocate.
    pub mem_free_async: Option<MemFreeAsync>,
    /// `cuMemFreeAsync_ptsz`, likewise.
    pub mem_free_async_ptsz: Option<MemFreeAsync>,
    /// `cuMemGetInfo_v2`: the real figures, replaced by the budget's when one is set.
    pub mem_get_info_v2: Option<MemGetInfoV2>,
    /// Legacy `cuMemGetInfo`, likewise with 32-bit figures.
    pub mem_get_info_v1: Option<MemGetInfoV1>,
    /// `cuGetProcAddress` (pre-12.0 signature), asked before the shim substitutes its entry points.
    pub get_proc_address_v1: Option<GetProcAddressV1>,
    /// `cuGetProcAddress_v2` (CUDA 12 signature), likewise.
    pub get_proc_address_v2: Option<GetProcAddressV2>,
    /// `cuCtxGetCurrent`: the context an allocation is recorded under.
    pub ctx_get_current: Option<CtxGetCurrent>,
    /// `cuCtxSetCurrent`: the control thread enters an allocation's context to prefetch or advise.
    pub ctx_set_current: Option<CtxSetCurrent>,
    /// `cuCtxGetDevice`: the device that `PREFETCH device` and `ADVISE device` target.
    pub ctx_get_device: Option<CtxGetDevice>,
    /// `cuStreamCreate`: the control thread's own non-blocking stream per context.
    pub stream_create: Option<StreamCreate>,
    /// `cuStreamSynchronize`: waits for prefetches, and for a stream before a stream-ordered free.
    pub stream_synchronize: Option<StreamSynchronize>,
    /// `cuMemPrefetchAsync`: moves managed memory on `PREFETCH`.
    pub mem_prefetch_async: Option<MemPrefetchAsync>,
    /// `cuMemAdvise`: sets the preferred location on `ADVISE`.
    pub mem_advise: Option<MemAdvise>,
}

/// Looks `name` up in the driver as a function pointer of type `T`.
///
/// # Safety
/// `T` must be the `extern "C"` function pointer type of the symbol `name`.
unsafe fn entry<T: Copy>(handle: *mut c_void, name: &CStr) -> Option<T> {
    const { assert!(size_of::<T>() == size_of::<*mut c_void>()) };
    // SAFETY: `handle` came from dlopen and `name` is a C string.
    let p = unsafe { real_dlsym(handle, name) };
    // SAFETY: `p` is the non-null address of the driver's function `name`, `T` is that
    // function's pointer type (the caller's promise) and pointer-sized (checked above), so the
    // bits of `p` are a valid `T`.
    (!p.is_null()).then(|| unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
}

impl Driver {
    fn open() -> Option<Driver> {
        // SAFETY: a NUL-terminated name; dlopen of an already loaded library is a lookup.
        let h = unsafe { libc::dlopen(LIBRARY.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
        if h.is_null() {
            return None;
        }
        // SAFETY: each name is paired with its C signature from `cuda`.
        unsafe {
            Some(Driver {
                handle: h as usize,
                mem_alloc_v2: entry(h, c"cuMemAlloc_v2"),
                mem_alloc_v1: entry(h, c"cuMemAlloc"),
                mem_alloc_pitch_v1: entry(h, c"cuMemAllocPitch"),
                mem_alloc_managed: entry(h, c"cuMemAllocManaged"),
                mem_alloc_async: entry(h, c"cuMemAllocAsync"),
                mem_alloc_async_ptsz: entry(h, c"cuMemAllocAsync_ptsz"),
                mem_free_v2: entry(h, c"cuMemFree_v2"),
                mem_free_v1: entry(h, c"cuMemFree"),
                mem_free_async: entry(h, c"cuMemFreeAsync"),
                mem_free_async_ptsz: entry(h, c"cuMemFreeAsync_ptsz"),
                mem_get_info_v2: entry(h, c"cuMemGetInfo_v2"),
                mem_get_info_v1: entry(h, c"cuMemGetInfo"),
                get_proc_address_v1: entry(h, c"cuGetProcAddress"),
                get_proc_address_v2: entry(h, c"cuGetProcAddress_v2"),
                ctx_get_current: entry(h, c"cuCtxGetCurrent"),
                ctx_set_current: entry(h, c"cuCtxSetCurrent"),
                ctx_get_device: entry(h, c"cuCtxGetDevice"),
                stream_create: entry(h, c"cuStreamCreate"),
                stream_synchronize: entry(h, c"cuStreamSynchronize"),
                mem_prefetch_async: entry(h, c"cuMemPrefetchAsync"),
                mem_advise: entry(h, c"cuMemAdvise"),
            })
        }
    }

    /// The address the driver exports under `name` (0 if none), to recognise which variant
    /// `cuGetProcAddress` handed out.
    pub fn address_of(&self, name: &CStr) -> usize {
        // SAFETY: the handle is the driver's; only the address is used.
        unsafe { real_dlsym(self.handle as *mut c_void, name) as usize }
    }

    /// The context current on this thread (null if none or unknown).
    pub fn current_context(&self) -> CuContext {
        let mut ctx: CuContext = std::ptr::null_mut();
        if let Some(f) = self.ctx_get_current {
            // SAFETY: a valid out-pointer.
            if unsafe { f(&mut ctx) } != CUDA_SUCCESS {
                return std::ptr::null_mut();
            }
        }
        ctx
    }
}

static DRIVER: OnceLock<Option<Driver>> = OnceLock::new();

/// The driver, opened on first use; `None` when `libcuda.so.1` cannot be loaded.
pub fn get() -> Option<&'static Driver> {
    DRIVER.get_or_init(Driver::open).as_ref()
}
