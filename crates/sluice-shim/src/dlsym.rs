//! `dlsym`: the real one, and the shim's replacement for it.
//!
//! CUDA runtimes (and PyTorch) do not link `libcuda`: they `dlopen("libcuda.so.1")` and look up
//! `cuGetProcAddress` (or each `cu*` name) with `dlsym(handle, …)`. A lookup by handle searches
//! only that library and its dependencies, never the preloaded shim, so `LD_PRELOAD` alone would
//! not be seen. The shim therefore exports `dlsym`: for a library handle and one of the names
//! in [`crate::exports`] it returns the shim's entry point; for everything else it jumps (a tail
//! jump that keeps the caller's return address, so `RTLD_NEXT` still means "after the caller")
//! into glibc's `dlsym`. The trampoline exists for x86_64 and aarch64; elsewhere the shim only
//! catches direct calls and `cuGetProcAddress`.
//!
//! The shim's own lookups go through [`real_dlsym`], found with `dlvsym(RTLD_NEXT, "dlsym", …)`.

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;

static REAL: AtomicUsize = AtomicUsize::new(0);

/// glibc's `dlsym` symbol versions, newest first (2.34 moved it into libc; the older names stay
/// as aliases).
#[cfg(target_arch = "aarch64")]
const VERSIONS: [&CStr; 2] = [c"GLIBC_2.34", c"GLIBC_2.17"];
#[cfg(not(target_arch = "aarch64"))]
const VERSIONS: [&CStr; 2] = [c"GLIBC_2.34", c"GLIBC_2.2.5"];

/// Stands in when no real `dlsym` can be found (not glibc): every lookup fails.
unsafe extern "C" fn no_dlsym(_: *mut c_void, _: *const c_char) -> *mut c_void {
    std::ptr::null_mut()
}

/// The address of glibc's `dlsym`, found once.
pub extern "C" fn real_dlsym_address() -> usize {
    let cached = REAL.load(Ordering::Acquire);
    if cached != 0 {
        return cached;
    }
    let found = VERSIONS
        .iter()
        // SAFETY: both strings are NUL-terminated; RTLD_NEXT from the shim finds libc's.
        .map(|v| unsafe { libc::dlvsym(libc::RTLD_NEXT, c"dlsym".as_ptr(), v.as_ptr()) })
        .find(|p| !p.is_null())
        .map_or(no_dlsym as DlsymFn as usize, |p| p as usize);
    REAL.store(found, Ordering::Release);
    found
}

/// Looks `name` up in `handle` with glibc's `dlsym`, bypassing the shim's replacement.
///
/// # Safety
/// `handle` must be a handle from `dlopen` (or a pseudo-handle) and `name` a C string.
pub unsafe fn real_dlsym(handle: *mut c_void, name: &CStr) -> *mut c_void {
    // SAFETY: the address is glibc's dlsym or `no_dlsym`, both with this signature.
    let f: DlsymFn = unsafe { std::mem::transmute::<usize, DlsymFn>(real_dlsym_address()) };
    // SAFETY: the caller passes a valid handle; `name` is a NUL-terminated string that outlives
    // the call. `f` is never the shim's own `dlsym`, so this cannot recurse.
    unsafe { f(handle, name.as_ptr()) }
}

/// The shim's answer to `dlsym(handle, symbol)`, or null to let glibc answer. Pseudo-handles
/// (`RTLD_DEFAULT` finds the shim anyway; `RTLD_NEXT` must keep its meaning) are left alone.
///
/// # Safety
/// `symbol` is null or a NUL-terminated string valid for the call (`dlsym`'s contract, which the
/// trampoline passes on unchanged); `handle` is only compared, never dereferenced.
unsafe extern "C" fn replacement(handle: *mut c_void, symbol: *const c_char) -> *mut c_void {
    if handle.is_null() || handle == libc::RTLD_NEXT || symbol.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `symbol` is non-null, and the caller promises a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(symbol) }.to_bytes();
    crate::exports::Export::by_symbol(name).map_or(std::ptr::null_mut(), |e| e.address() as _)
}

/// `dlsym` for every library in the process: see the module docs.
///
/// # Safety
/// As glibc's `dlsym`.
#[cfg(target_arch = "x86_64")]
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "push rdi",
        "push rsi",
        "sub rsp, 8",
        "call {replacement}",
        "test rax, rax",
        "jnz 2f",
        "call {real}",
        "add rsp, 8",
        "pop rsi",
        "pop rdi",
        "jmp rax",
        "2:",
        "add rsp, 8",
        "pop rsi",
        "pop rdi",
        "ret",
        replacement = sym replacement,
        real = sym real_dlsym_address,
    )
}

/// `dlsym` for every library in the process: see the module docs.
///
/// # Safety
/// As glibc's `dlsym`.
#[cfg(target_arch = "aarch64")]
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "stp x29, x30, [sp, #-32]!",
        "mov x29, sp",
        "stp x0, x1, [sp, #16]",
        "bl {replacement}",
        "cbnz x0, 2f",
        "bl {real}",
        "mov x16, x0",
        "ldp x0, x1, [sp, #16]",
        "ldp x29, x30, [sp], #32",
        "br x16",
        "2:",
        "ldp x29, x30, [sp], #32",
        "ret",
        replacement = sym replacement,
        real = sym real_dlsym_address,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_glibc_dlsym_and_resolves_through_it() {
        assert_ne!(real_dlsym_address(), no_dlsym as DlsymFn as usize);
        // SAFETY: RTLD_DEFAULT and a C string.
        let p = unsafe { real_dlsym(libc::RTLD_DEFAULT, c"getpid") };
        assert!(!p.is_null());
    }

    #[test]
    fn only_library_handles_and_shim_names_are_replaced() {
        let name = c"cuMemAlloc_v2".as_ptr();
        let handle = 0x1000 as *mut c_void;
        // SAFETY: every symbol is null or a C string literal; handles are only compared.
        unsafe {
            assert!(!replacement(handle, name).is_null());
            assert!(replacement(std::ptr::null_mut(), name).is_null());
            assert!(replacement(libc::RTLD_NEXT, name).is_null());
            assert!(replacement(handle, c"cuInit".as_ptr()).is_null());
            assert!(replacement(handle, std::ptr::null()).is_null());
        }
    }
}
