//! The slice of the CUDA driver ABI the shim uses: handle and result types, the constants it
//! passes, and the C signatures of the entry points it calls or replaces (as in CUDA 12's
//! `cuda.h`; the `_v2` names are the 64-bit ones every toolkit since 3.2 maps the plain names to).

use std::ffi::{c_char, c_int, c_uint, c_void};

pub type CuResult = c_int;
pub type CuDevicePtr = u64;
/// The pre-3.2 32-bit device pointer (`CUdeviceptr_v1`) of the legacy, unsuffixed entry points.
pub type CuDevicePtrV1 = c_uint;
pub type CuDevice = c_int;
pub type CuContext = *mut c_void;
pub type CuStream = *mut c_void;

pub const CUDA_SUCCESS: CuResult = 0;
pub const CUDA_ERROR_INVALID_VALUE: CuResult = 1;
pub const CUDA_ERROR_NOT_INITIALIZED: CuResult = 3;

/// `cuMemAllocManaged` flag: accessible from any stream on any device.
pub const CU_MEM_ATTACH_GLOBAL: c_uint = 0x1;
/// `cuStreamCreate` flag: no implicit synchronisation with the legacy null stream.
pub const CU_STREAM_NON_BLOCKING: c_uint = 0x1;
/// `CUmem_advise::CU_MEM_ADVISE_SET_PREFERRED_LOCATION`.
pub const CU_MEM_ADVISE_SET_PREFERRED_LOCATION: c_int = 3;
/// The device id that names host memory in prefetch and advice calls.
pub const CU_DEVICE_CPU: CuDevice = -1;
/// The per-thread default stream handle (`CU_STREAM_PER_THREAD`).
pub const CU_STREAM_PER_THREAD: usize = 0x2;
/// `cuGetProcAddress` first gained the `symbolStatus` argument in CUDA 12.0.
pub const PROC_ADDRESS_V2_VERSION: c_int = 12000;
/// The CUDA version from which the plain memory names resolve to their `_v2` entry points.
pub const V2_API_VERSION: c_int = 3020;

pub type MemAllocV2 = unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult;
pub type MemAllocV1 = unsafe extern "C" fn(*mut CuDevicePtrV1, c_uint) -> CuResult;
pub type MemAllocPitchV2 =
    unsafe extern "C" fn(*mut CuDevicePtr, *mut usize, usize, usize, c_uint) -> CuResult;
pub type MemAllocPitchV1 =
    unsafe extern "C" fn(*mut CuDevicePtrV1, *mut c_uint, c_uint, c_uint, c_uint) -> CuResult;
pub type MemAllocManaged = unsafe extern "C" fn(*mut CuDevicePtr, usize, c_uint) -> CuResult;
pub type MemAllocAsync = unsafe extern "C" fn(*mut CuDevicePtr, usize, CuStream) -> CuResult;
pub type MemFreeV2 = unsafe extern "C" fn(CuDevicePtr) -> CuResult;
pub type MemFreeV1 = unsafe extern "C" fn(CuDevicePtrV1) -> CuResult;
pub type MemFreeAsync = unsafe extern "C" fn(CuDevicePtr, CuStream) -> CuResult;
pub type MemGetInfoV2 = unsafe extern "C" fn(*mut usize, *mut usize) -> CuResult;
pub type MemGetInfoV1 = unsafe extern "C" fn(*mut c_uint, *mut c_uint) -> CuResult;
pub type GetProcAddressV1 =
    unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, u64) -> CuResult;
/// CUDA 12: `symbolStatus` is a `CUdriverProcAddressQueryResult *` (an enum, int-sized).
pub type GetProcAddressV2 =
    unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, u64, *mut c_int) -> CuResult;
pub type CtxGetCurrent = unsafe extern "C" fn(*mut CuContext) -> CuResult;
pub type CtxSetCurrent = unsafe extern "C" fn(CuContext) -> CuResult;
pub type CtxGetDevice = unsafe extern "C" fn(*mut CuDevice) -> CuResult;
pub type StreamCreate = unsafe extern "C" fn(*mut CuStream, c_uint) -> CuResult;
pub type StreamSynchronize = unsafe extern "C" fn(CuStream) -> CuResult;
pub type MemPrefetchAsync =
    unsafe extern "C" fn(CuDevicePtr, usize, CuDevice, CuStream) -> CuResult;
pub type MemAdvise = unsafe extern "C" fn(CuDevicePtr, usize, c_int, CuDevice) -> CuResult;
