/* A fake CUDA driver (libcuda.so.1) for the shim's tests: no GPU, host memory behind every
 * pointer, and one log line per call ("name key=value ...") appended to $FAKE_CUDA_LOG.
 * Built by tests/interposition.rs with -Wl,-Bsymbolic so that the addresses its
 * cuGetProcAddress hands out are its own functions, as the real driver's are. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef unsigned int CUdeviceptr_v1;
typedef int CUdevice;
typedef void *CUcontext;
typedef void *CUstream;

#define GIB (1024ULL * 1024 * 1024)

static __thread CUcontext current;
static int next_ctx = 0, next_stream = 0;
static unsigned int next_v1 = 0x1000;

static void logf_(const char *fmt, ...) {
    const char *path = getenv("FAKE_CUDA_LOG");
    if (!path) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return;
    if (write(fd, line, n) < 0) { /* nothing to do in a fake */ }
    close(fd);
}

CUresult cuInit(unsigned int flags) { logf_("cuInit flags=%u", flags); return 0; }
CUresult cuDeviceGet(CUdevice *d, int ordinal) { *d = ordinal; logf_("cuDeviceGet ordinal=%d", ordinal); return 0; }
CUresult cuCtxCreate_v2(CUcontext *c, unsigned int flags, CUdevice d) {
    *c = (CUcontext)(uintptr_t)(0xC000 + ++next_ctx);
    current = *c;
    logf_("cuCtxCreate_v2 dev=%d -> ctx=%p", d, *c);
    return 0;
}
CUresult cuCtxGetCurrent(CUcontext *c) { *c = current; return 0; }
CUresult cuCtxSetCurrent(CUcontext c) { current = c; logf_("cuCtxSetCurrent ctx=%p", c); return 0; }
CUresult cuCtxGetDevice(CUdevice *d) { if (!current) return 201; *d = 0; return 0; }

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
    *p = (CUdeviceptr)(uintptr_t)malloc(n);
    logf_("cuMemAlloc_v2 bytes=%zu -> ptr=0x%llx", n, *p);
    return 0;
}
CUresult cuMemAlloc(CUdeviceptr_v1 *p, unsigned int n) {
    *p = next_v1; next_v1 += 0x1000;
    logf_("cuMemAlloc bytes=%u -> ptr=0x%x", n, *p);
    return 0;
}
CUresult cuMemAllocManaged(CUdeviceptr *p, size_t n, unsigned int flags) {
    if (n == 0) return 1;
    if (!current) return 201;
    *p = (CUdeviceptr)(uintptr_t)malloc(n);
    logf_("cuMemAllocManaged bytes=%zu flags=%u ctx=%p -> ptr=0x%llx", n, flags, current, *p);
    return 0;
}
CUresult cuMemAllocPitch_v2(CUdeviceptr *p, size_t *pitch, size_t w, size_t h, unsigned int e) {
    *pitch = w; *p = (CUdeviceptr)(uintptr_t)malloc(w * h);
    logf_("cuMemAllocPitch_v2 width=%zu height=%zu", w, h);
    return 0;
}
CUresult cuMemAllocPitch(CUdeviceptr_v1 *p, unsigned int *pitch, unsigned int w, unsigned int h, unsigned int e) {
    *pitch = w; *p = next_v1; next_v1 += 0x1000;
    logf_("cuMemAllocPitch width=%u height=%u", w, h);
    return 0;
}
CUresult cuMemAllocAsync(CUdeviceptr *p, size_t n, CUstream s) {
    *p = (CUdeviceptr)(uintptr_t)malloc(n);
    logf_("cuMemAllocAsync bytes=%zu stream=%p", n, s);
    return 0;
}
CUresult cuMemAllocAsync_ptsz(CUdeviceptr *p, size_t n, CUstream s) {
    *p = (CUdeviceptr)(uintptr_t)malloc(n);
    logf_("cuMemAllocAsync_ptsz bytes=%zu stream=%p", n, s);
    return 0;
}
CUresult cuMemFree_v2(CUdeviceptr p) { logf_("cuMemFree_v2 ptr=0x%llx", p); free((void *)(uintptr_t)p); return 0; }
CUresult cuMemFree(CUdeviceptr_v1 p) { logf_("cuMemFree ptr=0x%x", p); return 0; }
CUresult cuMemFreeAsync(CUdeviceptr p, CUstream s) { logf_("cuMemFreeAsync ptr=0x%llx stream=%p", p, s); return 0; }
CUresult cuMemFreeAsync_ptsz(CUdeviceptr p, CUstream s) { logf_("cuMemFreeAsync_ptsz ptr=0x%llx stream=%p", p, s); return 0; }
CUresult cuMemGetInfo_v2(size_t *f, size_t *t) { *f = 6 * GIB; *t = 8 * GIB; logf_("cuMemGetInfo_v2"); return 0; }
CUresult cuMemGetInfo(unsigned int *f, unsigned int *t) { *f = 3 * (GIB / 4); *t = GIB; logf_("cuMemGetInfo"); return 0; }
CUresult cuStreamCreate(CUstream *s, unsigned int flags) {
    *s = (CUstream)(uintptr_t)(0x5000 + ++next_stream);
    logf_("cuStreamCreate flags=%u ctx=%p -> stream=%p", flags, current, *s);
    return 0;
}
CUresult cuStreamSynchronize(CUstream s) { logf_("cuStreamSynchronize stream=%p", s); return 0; }
CUresult cuMemPrefetchAsync(CUdeviceptr p, size_t n, CUdevice d, CUstream s) {
    logf_("cuMemPrefetchAsync ptr=0x%llx bytes=%zu dev=%d stream=%p ctx=%p", p, n, d, s, current);
    return 0;
}
CUresult cuMemAdvise(CUdeviceptr p, size_t n, int advice, CUdevice d) {
    logf_("cuMemAdvise ptr=0x%llx bytes=%zu advice=%d dev=%d", p, n, advice, d);
    return 0;
}

CUresult cuGetProcAddress(const char *, void **, int, unsigned long long);
CUresult cuGetProcAddress_v2(const char *, void **, int, unsigned long long, int *);

/* Base name -> entry point, chosen by version and flags the way the driver documents it. */
static void *lookup(const char *name, int version, unsigned long long flags) {
    int v2 = version >= 3020, ptsz = (flags & 2) != 0;
    if (!strcmp(name, "cuMemAlloc")) return v2 ? (void *)cuMemAlloc_v2 : (void *)cuMemAlloc;
    if (!strcmp(name, "cuMemAllocPitch")) return v2 ? (void *)cuMemAllocPitch_v2 : (void *)cuMemAllocPitch;
    if (!strcmp(name, "cuMemFree")) return v2 ? (void *)cuMemFree_v2 : (void *)cuMemFree;
    if (!strcmp(name, "cuMemGetInfo")) return v2 ? (void *)cuMemGetInfo_v2 : (void *)cuMemGetInfo;
    if (!strcmp(name, "cuMemAllocAsync")) return ptsz ? (void *)cuMemAllocAsync_ptsz : (void *)cuMemAllocAsync;
    if (!strcmp(name, "cuMemFreeAsync")) return ptsz ? (void *)cuMemFreeAsync_ptsz : (void *)cuMemFreeAsync;
    if (!strcmp(name, "cuGetProcAddress")) return version >= 12000 ? (void *)cuGetProcAddress_v2 : (void *)cuGetProcAddress;
    if (!strcmp(name, "cuInit")) return (void *)cuInit;
    return NULL;
}

CUresult cuGetProcAddress(const char *name, void **pfn, int version, unsigned long long flags) {
    logf_("cuGetProcAddress symbol=%s version=%d flags=%llu", name, version, flags);
    *pfn = lookup(name, version, flags);
    return *pfn ? 0 : 500;
}
CUresult cuGetProcAddress_v2(const char *name, void **pfn, int version, unsigned long long flags, int *status) {
    logf_("cuGetProcAddress_v2 symbol=%s version=%d flags=%llu", name, version, flags);
    *pfn = lookup(name, version, flags);
    if (status) *status = *pfn ? 0 : 1;
    return *pfn ? 0 : 500;
}
