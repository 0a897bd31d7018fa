//! In-place hand-off on a GPU: CUDA IPC memory handles.
//!
//! A producer exports the IPC handle of a device allocation (`cuIpcGetMemHandle`): 64 opaque bytes,
//! carried in a manifest as a 128-digit hex string ([`IpcHandle`]). A consumer in another process on
//! the same GPU opens it (`cuIpcOpenMemHandle`, lazy peer access) and reads the producer's memory in
//! place; [`OpenedMemory`] closes it (`cuIpcCloseMemHandle`) on drop. The CUDA driver is loaded at
//! run time: on a machine without one, [`available`] is false and every call returns
//! [`CudaIpcError::Unavailable`] instead of panicking. This module owns the handles and a minimal
//! device allocation ([`DeviceBuffer`]) to export; it does not own device scheduling or MPS.

use cudarc::driver::{result, sys, DriverError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use thiserror::Error;

/// Size of a CUDA IPC memory handle in bytes.
pub const HANDLE_LEN: usize = sys::CU_IPC_HANDLE_SIZE as usize;

/// A failure of a CUDA IPC operation.
#[derive(Debug, Clone, Error)]
pub enum CudaIpcError {
    /// No usable CUDA driver or device here (why); nothing was attempted.
    #[error("CUDA IPC is not available: {0}")]
    Unavailable(String),
    /// A driver call returned an error.
    #[error("{call} failed: {error}")]
    Driver {
        /// The driver entry point, e.g. `cuIpcOpenMemHandle`.
        call: &'static str,
        /// The driver's error, as text.
        error: String,
    },
    /// A handle's text is not 128 hex digits (what is wrong).
    #[error("bad CUDA IPC handle: {0}")]
    BadHandle(String),
    /// A request refused before it reached the driver: a GPU ordinal out of range, an empty
    /// buffer, a read longer than the hand-off.
    #[error("{0}")]
    Invalid(String),
}

fn driver(call: &'static str) -> impl FnOnce(DriverError) -> CudaIpcError {
    move |e| CudaIpcError::Driver {
        call,
        error: e.to_string(),
    }
}

/// Whether the CUDA driver is loadable, initialises, and sees at least one device (checked once).
pub fn available() -> bool {
    driver_ready().is_ok()
}

fn driver_ready() -> Result<(), CudaIpcError> {
    static READY: OnceLock<Result<(), CudaIpcError>> = OnceLock::new();
    READY
        .get_or_init(|| {
            // SAFETY: only tries to load libcuda; cudarc's other entry points panic without it,
            // so this check guards every one of them.
            if !unsafe { sys::is_culib_present() } {
                return Err(CudaIpcError::Unavailable(
                    "the CUDA driver library (libcuda) is not installed".into(),
                ));
            }
            result::init().map_err(driver("cuInit"))?;
            let count = result::device::get_count().map_err(driver("cuDeviceGetCount"))?;
            if count < 1 {
                return Err(CudaIpcError::Unavailable("no CUDA device".into()));
            }
            Ok(())
        })
        .clone()
}

/// A CUDA IPC memory handle: 64 opaque bytes, written as 128 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpcHandle([u8; HANDLE_LEN]);

impl IpcHandle {
    /// The handle with these opaque bytes (as `cuIpcGetMemHandle` wrote them).
    pub fn from_bytes(bytes: [u8; HANDLE_LEN]) -> Self {
        IpcHandle(bytes)
    }

    /// The handle's opaque bytes.
    pub fn as_bytes(&self) -> &[u8; HANDLE_LEN] {
        &self.0
    }

    fn to_sys(self) -> sys::CUipcMemHandle {
        sys::CUipcMemHandle {
            reserved: self.0.map(|b| b as std::ffi::c_char),
        }
    }

    fn from_sys(handle: sys::CUipcMemHandle) -> Self {
        IpcHandle(handle.reserved.map(|c| c as u8))
    }
}

impl fmt::Display for IpcHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for IpcHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpcHandle({self})")
    }
}

impl FromStr for IpcHandle {
    type Err = CudaIpcError;

    fn from_str(s: &str) -> Result<Self, CudaIpcError> {
        if s.len() != 2 * HANDLE_LEN || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CudaIpcError::BadHandle(format!(
                "expected {} hex digits, got {} characters, or some are not hex",
                2 * HANDLE_LEN,
                s.chars().count()
            )));
        }
        let mut bytes = [0u8; HANDLE_LEN];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = &s[2 * i..2 * i + 2];
            *byte = u8::from_str_radix(pair, 16).map_err(|_| {
                CudaIpcError::BadHandle(format!("{pair:?} at {} is not hex", 2 * i))
            })?;
        }
        Ok(IpcHandle(bytes))
    }
}

impl Serialize for IpcHandle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpcHandle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A GPU's primary context, retained while this value lives; every call below makes it current.
#[derive(Debug)]
pub struct CudaDevice {
    device: sys::CUdevice,
    ctx: sys::CUcontext,
    ordinal: usize,
}

// SAFETY: a primary context is a process-wide handle usable from any thread; each operation makes it
// current on the calling thread before using it.
unsafe impl Send for CudaDevice {}
// SAFETY: as above; the handle itself is never mutated after `open`.
unsafe impl Sync for CudaDevice {}

impl CudaDevice {
    /// Retains the primary context of GPU `ordinal`.
    pub fn open(ordinal: usize) -> Result<Arc<Self>, CudaIpcError> {
        driver_ready()?;
        let index = i32::try_from(ordinal)
            .map_err(|_| CudaIpcError::Invalid(format!("no GPU {ordinal}")))?;
        let device = result::device::get(index).map_err(driver("cuDeviceGet"))?;
        // SAFETY: `device` is a valid device handle; the context is released in `Drop`.
        let ctx = unsafe { result::primary_ctx::retain(device) }
            .map_err(driver("cuDevicePrimaryCtxRetain"))?;
        Ok(Arc::new(CudaDevice {
            device,
            ctx,
            ordinal,
        }))
    }

    /// The CUDA device ordinal this context belongs to (as passed to [`CudaDevice::open`]).
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    fn bind(&self) -> Result<(), CudaIpcError> {
        // SAFETY: `ctx` is the retained primary context, alive as long as `self`.
        unsafe { result::ctx::set_current(self.ctx) }.map_err(driver("cuCtxSetCurrent"))
    }

    /// Exports the IPC handle of `ptr`, which must be the base of an allocation made with
    /// `cuMemAlloc` on this device (the driver rejects anything else with an error).
    pub fn export(&self, ptr: sys::CUdeviceptr) -> Result<IpcHandle, CudaIpcError> {
        self.bind()?;
        let mut handle = std::mem::MaybeUninit::<sys::CUipcMemHandle>::uninit();
        // SAFETY: the driver writes the handle on success and only reads `ptr`'s address.
        unsafe {
            sys::cuIpcGetMemHandle(handle.as_mut_ptr(), ptr)
                .result()
                .map_err(driver("cuIpcGetMemHandle"))?;
            Ok(IpcHandle::from_sys(handle.assume_init()))
        }
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        // SAFETY: balances the retain in `open`. A failure cannot be acted on here.
        let _ = unsafe { result::primary_ctx::release(self.device) };
    }
}

/// A device allocation owned by this process (`cuMemAlloc`), freed on drop.
#[derive(Debug)]
pub struct DeviceBuffer {
    device: Arc<CudaDevice>,
    ptr: sys::CUdeviceptr,
    len: usize,
}

impl DeviceBuffer {
    /// Allocates `bytes.len()` bytes on `device` and copies `bytes` there.
    pub fn from_host(device: &Arc<CudaDevice>, bytes: &[u8]) -> Result<Self, CudaIpcError> {
        if bytes.is_empty() {
            return Err(CudaIpcError::Invalid(
                "cannot allocate an empty device buffer".into(),
            ));
        }
        device.bind()?;
        // SAFETY: a plain allocation in the current (bound) context.
        let ptr = unsafe { result::malloc_sync(bytes.len()) }.map_err(driver("cuMemAlloc"))?;
        let buffer = DeviceBuffer {
            device: Arc::clone(device),
            ptr,
            len: bytes.len(),
        };
        // SAFETY: `ptr` holds `bytes.len()` bytes.
        unsafe { result::memcpy_htod_sync(ptr, bytes) }.map_err(driver("cuMemcpyHtoD"))?;
        Ok(buffer)
    }

    /// The allocation's device address (its base, as `cuMemAlloc` returned it).
    pub fn device_ptr(&self) -> sys::CUdeviceptr {
        self.ptr
    }

    /// Size of the allocation, bytes (≥ 1).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: empty buffers are refused by [`DeviceBuffer::from_host`].
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The IPC handle another process opens with [`OpenedMemory::open`].
    pub fn export(&self) -> Result<IpcHandle, CudaIpcError> {
        self.device.export(self.ptr)
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if self.device.bind().is_ok() {
            // SAFETY: `ptr` came from `cuMemAlloc` and is freed once.
            let _ = unsafe { result::free_sync(self.ptr) };
        }
    }
}

/// Another process's allocation, opened from its IPC handle; closed on drop.
#[derive(Debug)]
pub struct OpenedMemory {
    device: Arc<CudaDevice>,
    ptr: sys::CUdeviceptr,
    len: usize,
}

impl OpenedMemory {
    /// Opens `handle` on `device`; `len` is the number of bytes the consumer will read (from the
    /// manifest; the driver does not know it).
    pub fn open(
        device: &Arc<CudaDevice>,
        handle: &IpcHandle,
        len: usize,
    ) -> Result<Self, CudaIpcError> {
        device.bind()?;
        let mut ptr: sys::CUdeviceptr = 0;
        let flags = sys::CUipcMem_flags::CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS as std::ffi::c_uint;
        // SAFETY: the driver validates the handle and writes the mapped address on success.
        unsafe { sys::cuIpcOpenMemHandle_v2(&mut ptr, handle.to_sys(), flags) }
            .result()
            .map_err(driver("cuIpcOpenMemHandle"))?;
        Ok(OpenedMemory {
            device: Arc::clone(device),
            ptr,
            len,
        })
    }

    /// The mapped device address, for kernels that read the producer's memory in place.
    pub fn device_ptr(&self) -> sys::CUdeviceptr {
        self.ptr
    }

    /// Bytes of the hand-off, as the manifest gave them to [`OpenedMemory::open`].
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the hand-off has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the first `dst.len()` bytes (at most [`len`](Self::len)) to host memory.
    pub fn copy_to_host(&self, dst: &mut [u8]) -> Result<(), CudaIpcError> {
        if dst.len() > self.len {
            return Err(CudaIpcError::Invalid(format!(
                "cannot read {} bytes from a {}-byte hand-off",
                dst.len(),
                self.len
            )));
        }
        self.device.bind()?;
        // SAFETY: `self.ptr` stays mapped until `self` is dropped, and `u8` has no invalid values,
        // so any bytes the device holds are valid for `dst`; the driver writes exactly
        // `dst.len()` bytes, into `dst` only. `dst.len() ≤ self.len` is all that is known of the
        // producer's allocation (its manifest): one that overstates it can make the copy fail or
        // read past it in this process's device address space, never write outside `dst`.
        unsafe { result::memcpy_dtoh_sync(dst, self.ptr) }.map_err(driver("cuMemcpyDtoH"))
    }
}

impl Drop for OpenedMemory {
    fn drop(&mut self) {
        if self.device.bind().is_ok() {
            // SAFETY: `ptr` came from `cuIpcOpenMemHandle` and is closed once.
            let _ = unsafe { sys::cuIpcCloseMemHandle(self.ptr) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_hex_round_trips() {
        let bytes: [u8; HANDLE_LEN] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        let handle = IpcHandle::from_bytes(bytes);
        let hex = handle.to_string();
        assert_eq!(hex.len(), 128);
        assert_eq!(hex.parse::<IpcHandle>().unwrap(), handle);
        let json = serde_json::to_string(&handle).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<IpcHandle>(&json).unwrap(), handle);
        let via_sys = IpcHandle::from_sys(handle.to_sys());
        assert_eq!(via_sys, handle);
    }

    #[test]
    fn bad_handles_are_errors() {
        assert!(matches!(
            "ab".parse::<IpcHandle>(),
            Err(CudaIpcError::BadHandle(_))
        ));
        let not_hex = "zz".repeat(HANDLE_LEN);
        let err = not_hex.parse::<IpcHandle>().unwrap_err();
        assert!(err.to_string().contains("not hex"), "{err}");
        let non_ascii = "é".repeat(HANDLE_LEN);
        assert!(non_ascii.parse::<IpcHandle>().is_err());
        let signed = "+1".repeat(HANDLE_LEN);
        assert!(
            signed.parse::<IpcHandle>().is_err(),
            "u8::from_str_radix takes a sign"
        );
    }

    #[test]
    fn without_a_gpu_calls_fail_cleanly() {
        if available() {
            eprintln!("note: a CUDA device is present; the no-GPU path is not exercised");
            return;
        }
        let err = CudaDevice::open(0).unwrap_err();
        assert!(matches!(err, CudaIpcError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("not available"), "{err}");
    }
}
