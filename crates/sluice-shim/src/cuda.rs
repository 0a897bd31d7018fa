//! The slice of the CUDA driver ABI the shim uses: handle and result types, the constants it
//! passes, and the C signatures of the entry points it calls or replaces (as in CUDA 12's
//! `cuda.h`; the `_v2` names are the 64-bit ones every toolkit since 3.2 maps the plain names to).

use std::ffi::{c_char, c_int, c_uint, c_void};

/// `CUresult`: the status every driver call returns, [`CUDA_SUCCESS`] or an error code.
pub type CuResult = c_int;
/// `CUdeviceptr` (64-bit since CUDA 3.2): a device or managed address, as an integer.
pub type CuDevicePtr = u64;
/// The pre-3.2 32-bit device pointer (`CUdeviceptr_v1`) of the legacy, unsuffixed entry points.
pub type CuDevicePtrV1 = c_uint;
/// `CUdevice`: a device ordinal; [`CU_DEVICE_CPU`] names the host in prefetch and advice.
pub type CuDevice = c_int;
/// `CUcontext`: an opaque driver handle to a context.
pub type CuContext = *mut c_void;
/// `CUstream`: an opaque driver handle to a stream; null is the legacy default stream.
pub type CuStream = *mut c_void;

/// `CUDA_SUCCESS`: the call did what it was asked.
pub const CUDA_SUCCESS: CuResult = 0;
/// `CUDA_ERROR_INVALID_VALUE`: an argument is out of range (a null out-pointer, a bad size).
pub const CUDA_ERROR_INVALID_VALUE: CuResult = 1;
/// `CUDA_ERROR_NOT_INITIALIZED`: what the shim answers when the driver, or the entry point a
/// call needs, is missing.
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

/// `cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)`.
pub type MemAllocV2 = unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult;
/// Legacy `cuMemAlloc(CUdeviceptr_v1 *dptr, unsigned int bytesize)`.
pub type MemAllocV1 = unsafe extern "C" fn(*mut CuDevicePtrV1, c_uint) -> CuResult;
/// `cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
/// unsigned int ElementSizeBytes)`.
pub type MemAllocPitchV2 =
    unsafe extern "C" fn(*mut CuDevicePtr, *mut usize, usize, usize, c_uint) -> CuResult;
/// Legacy `cuMemAllocPitch`: as [`MemAllocPitchV2`] with 32-bit pointer, pitch and sizes.
pub type MemAllocPitchV1 =
    unsafe extern "C" fn(*mut CuDevicePtrV1, *mut c_uint, c_uint, c_uint, c_uint) -> CuResult;
/// `cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)`.
pub type MemAllocManaged = unsafe extern "C" fn(*mut CuDevicePtr, usize, c_uint) -> CuResult;
/// `cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)` (and `_ptsz`).
pub type MemAllocAsync = unsafe extern "C" fn(*mut CuDevicePtr, usize, CuStream) -> CuResult;
/// `cuMemFree_v2(CUdeviceptr dptr)`.
pub type MemFreeV2 = unsafe extern "C" fn(CuDevicePtr) -> CuResult;
/// Legacy `cuMemFree(CUdeviceptr_v1 dptr)`.
pub type MemFreeV1 = unsafe extern "C" fn(CuDevicePtrV1) -> CuResult;
/// `cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)` (and `_ptsz`).
pub type MemFreeAsync = unsafe extern "C" fn(CuDevicePtr, CuStream) -> CuResult;
/// `cuMemGetInfo_v2(size_t *free, size_t *total)`, bytes.
pub type MemGetInfoV2 = unsafe extern "C" fn(*mut usize, *mut usize) -> CuResult;
/// Legacy `cuMemGetInfo(unsigned int *free, unsigned int *total)`, bytes.
pub type MemGetInfoV1 = unsafe extern "C" fn(*mut c_uint, *mut c_uint) -> CuResult;
/// `cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)`, the
/// pre-12.0 form.
pub type GetProcAddressV1 =
    unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, u64) -> CuResult;
/// CUDA 12: `symbolStatus` is a `CUdriverProcAddressQueryResult *` (an enum, int-sized).
pub type GetProcAddressV2 =
    unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, u64, *mut c_int) -> CuResult;
/// `cuCtxGetCurrent(CUcontext *pctx)`.
pub type CtxGetCurrent = unsafe extern "C" fn(*mut CuContext) -> CuResult;
/// `cuCtxSetCurrent(CUcontext ctx)`.
pub type CtxSetCurrent = unsafe extern "C" fn(CuContext) -> CuResult;
/// `cuCtxGetDevice(CUdevice *device)`.
pub type CtxGetDevice = unsafe extern "C" fn(*mut CuDevice) -> CuResult;
/// `cuStreamCreate(CUstream *phStream, unsigned int Flags)`.
pub type StreamCreate = unsafe extern "C" fn(*mut CuStream, c_uint) -> CuResult;
/// `cuStreamSynchronize(CUstream hStream)`.
pub type StreamSynchronize = unsafe extern "C" fn(CuStream) -> CuResult;
/// `cuMemPrefetchAsync(CUdeviceptr devPtr, size_t count, CUdevice dstDevice, CUstream hStream)`.
pub type MemPrefetchAsync =
    unsafe extern "C" fn(CuDevicePtr, usize, CuDevice, CuStream) -> CuResult;
/// `cuMemAdvise(CUdeviceptr devPtr, size_t count, CUmem_advise advice, CUdevice device)`.
pub type MemAdvise = unsafe extern "C" fn(CuDevicePtr, usize, c_int, CuDevice) -> CuResult;
