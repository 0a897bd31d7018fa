//! Which shim entry point `cuGetProcAddress` hands out in place of the driver's. The driver is
//! asked first (so unknown names, versions and errors stay its business); when the symbol is one
//! the shim replaces, the variant is chosen as the driver chose it: the `_v2` memory calls from
//! CUDA 3.2 on (older versions get the legacy 32-bit ones only if the driver returned exactly
//! those), `cuGetProcAddress_v2` from CUDA 12.0, and the per-thread-default-stream
//! `cuMemFreeAsync_ptsz` when the driver returned its `_ptsz` function.

use crate::cuda::{PROC_ADDRESS_V2_VERSION, V2_API_VERSION};
use crate::driver::Driver;
use crate::exports::Export;
use std::ffi::{c_char, c_int, c_void, CStr};

/// The shim's replacement for `name` at `version`, given the address `found` the driver
/// returned and `exported`, which gives the driver's exported address of a symbol.
pub fn choose(
    name: &[u8],
    version: c_int,
    found: usize,
    exported: impl Fn(&CStr) -> usize,
) -> Option<Export> {
    let versioned = |v2: Export, v1: Export, legacy: &CStr| {
        if version >= V2_API_VERSION {
            Some(v2)
        } else {
            (found == exported(legacy)).then_some(v1)
        }
    };
    match name {
        b"cuMemAlloc" => versioned(Export::MemAllocV2, Export::MemAllocV1, c"cuMemAlloc"),
        b"cuMemAllocPitch" => versioned(
            Export::MemAllocPitchV2,
            Export::MemAllocPitchV1,
            c"cuMemAllocPitch",
        ),
        b"cuMemFree" => versioned(Export::MemFreeV2, Export::MemFreeV1, c"cuMemFree"),
        b"cuMemGetInfo" => versioned(Export::MemGetInfoV2, Export::MemGetInfoV1, c"cuMemGetInfo"),
        b"cuMemAllocAsync" => Some(if found == exported(c"cuMemAllocAsync_ptsz") {
            Export::MemAllocAsyncPtsz
        } else {
            Export::MemAllocAsync
        }),
        b"cuMemFreeAsync" => Some(if found == exported(c"cuMemFreeAsync_ptsz") {
            Export::MemFreeAsyncPtsz
        } else {
            Export::MemFreeAsync
        }),
        b"cuGetProcAddress" => Some(if version >= PROC_ADDRESS_V2_VERSION {
            Export::GetProcAddressV2
        } else {
            Export::GetProcAddressV1
        }),
        exact => Export::by_symbol(exact),
    }
}

/// Replaces `*pfn` (just filled by the driver for `symbol`) with the shim's entry point where
/// there is one.
///
/// # Safety
/// `symbol` is null or a C string; `pfn` is null or valid for reads and writes.
pub unsafe fn substitute(d: &Driver, symbol: *const c_char, pfn: *mut *mut c_void, version: c_int) {
    if symbol.is_null() || pfn.is_null() {
        return;
    }
    // SAFETY: `pfn` is non-null, and the caller promises it is valid for reads.
    let found = unsafe { *pfn } as usize;
    if found == 0 {
        return;
    }
    // SAFETY: `symbol` is non-null, and the caller promises a NUL-terminated string that lives
    // for this call (the borrow ends with it).
    let name = unsafe { CStr::from_ptr(symbol) }.to_bytes();
    if let Some(e) = choose(name, version, found, |s| d.address_of(s)) {
        // SAFETY: `pfn` is non-null and, by the caller's promise, valid for writes.
        unsafe { *pfn = e.address() as *mut c_void };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported(s: &CStr) -> usize {
        match s.to_bytes() {
            b"cuMemAlloc" => 0x10,
            b"cuMemFreeAsync_ptsz" => 0x20,
            b"cuMemAllocAsync_ptsz" => 0x30,
            _ => 0x99,
        }
    }

    #[test]
    fn memory_calls_follow_the_api_version() {
        assert_eq!(
            choose(b"cuMemAlloc", 12000, 0x1, exported),
            Some(Export::MemAllocV2)
        );
        assert_eq!(
            choose(b"cuMemGetInfo", 3020, 0x1, exported),
            Some(Export::MemGetInfoV2)
        );
        assert_eq!(
            choose(b"cuMemAlloc", 3000, 0x10, exported),
            Some(Export::MemAllocV1)
        );
        // An old version answered with something the shim does not know: left alone.
        assert_eq!(choose(b"cuMemAlloc", 3000, 0x11, exported), None);
    }

    #[test]
    fn stream_variants_follow_the_driver() {
        assert_eq!(
            choose(b"cuMemFreeAsync", 12000, 0x20, exported),
            Some(Export::MemFreeAsyncPtsz)
        );
        assert_eq!(
            choose(b"cuMemFreeAsync", 12000, 0x21, exported),
            Some(Export::MemFreeAsync)
        );
        assert_eq!(
            choose(b"cuMemAllocAsync", 12000, 0x30, exported),
            Some(Export::MemAllocAsyncPtsz)
        );
    }

    #[test]
    fn get_proc_address_itself_and_others() {
        assert_eq!(
            choose(b"cuGetProcAddress", 12000, 1, exported),
            Some(Export::GetProcAddressV2)
        );
        assert_eq!(
            choose(b"cuGetProcAddress", 11080, 1, exported),
            Some(Export::GetProcAddressV1)
        );
        assert_eq!(choose(b"cuLaunchKernel", 12000, 1, exported), None);
        assert_eq!(
            choose(b"cuMemAlloc_v2", 12000, 1, exported),
            Some(Export::MemAllocV2)
        );
    }
}
