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
    handle: usize,
    pub mem_alloc_v2: Option<MemAllocV2>,
    pub mem_alloc_v1: Option<MemAllocV1>,
    pub mem_alloc_pitch_v2: Option<MemAllocPitchV2>,
    pub mem_alloc_pitch_v1: Option<MemAllocPitchV1>,
    pub mem_alloc_managed: Option<MemAllocManaged>,
    pub mem_alloc_async: Option<MemAllocAsync>,
    pub mem_alloc_async_ptsz: Option<MemAllocAsync>,
    pub mem_free_v2: Option<MemFreeV2>,
    pub mem_free_v1: Option<MemFreeV1>,
    pub mem_free_async: Option<MemFreeAsync>,
    pub mem_free_async_ptsz: Option<MemFreeAsync>,
    pub mem_get_info_v2: Option<MemGetInfoV2>,
    pub mem_get_info_v1: Option<MemGetInfoV1>,
    pub get_proc_address_v1: Option<GetProcAddressV1>,
    pub get_proc_address_v2: Option<GetProcAddressV2>,
    pub ctx_get_current: Option<CtxGetCurrent>,
    pub ctx_set_current: Option<CtxSetCurrent>,
    pub ctx_get_device: Option<CtxGetDevice>,
    pub stream_create: Option<StreamCreate>,
    pub stream_synchronize: Option<StreamSynchronize>,
    pub mem_prefetch_async: Option<MemPrefetchAsync>,
    pub mem_advise: Option<MemAdvise>,
}

/// Looks `name` up in the driver as a function pointer of type `T`.
///
/// # Safety
/// `T` must be the `extern "C"` function pointer type of the symbol `name`.
unsafe fn entry<T: Copy>(handle: *mut c_void, name: &CStr) -> Option<T> {
    const { assert!(size_of::<T>() == size_of::<*mut c_void>()) };
    // SAFETY: `handle` came from dlopen; the caller vouches for `T`.
    let p = unsafe { real_dlsym(handle, name) };
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
                mem_alloc_pitch_v2: entry(h, c"cuMemAllocPitch_v2"),
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
