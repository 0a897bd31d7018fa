/* A CUDA client for the shim's tests, loading the driver the way CUDA runtimes do (dlopen of
 * libcuda.so.1, dlsym by handle, cuGetProcAddress). It reads commands on stdin and answers
 * each with one line on stdout:
 *   init | alloc N | procalloc N | procalloc11 N | pitch W H E | async N | legacy N
 *   free PTR | freeasync_ptsz PTR | info | quit
 * Without a loadable libcuda.so.1 it prints "nolib" and exits 0. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef CUresult (*alloc_t)(CUdeviceptr *, size_t);
typedef CUresult (*alloc_async_t)(CUdeviceptr *, size_t, void *);
typedef CUresult (*alloc_v1_t)(unsigned int *, unsigned int);
typedef CUresult (*pitch_t)(CUdeviceptr *, size_t *, size_t, size_t, unsigned int);
typedef CUresult (*free_t)(CUdeviceptr);
typedef CUresult (*free_async_t)(CUdeviceptr, void *);
typedef CUresult (*info_t)(size_t *, size_t *);
typedef CUresult (*init_t)(unsigned int);
typedef CUresult (*device_get_t)(int *, int);
typedef CUresult (*ctx_create_t)(void **, unsigned int, int);
typedef CUresult (*gpa1_t)(const char *, void **, int, unsigned long long);
typedef CUresult (*gpa2_t)(const char *, void **, int, unsigned long long, int *);

static void *lib;
static void *sym(const char *n) {
    void *p = dlsym(lib, n);
    if (!p) { printf("missing %s\n", n); fflush(stdout); exit(2); }
    return p;
}
/* Resolves `name` the CUDA 12 way: cuGetProcAddress itself obtained through cuGetProcAddress. */
static void *proc(const char *name, int version, unsigned long long flags) {
    gpa2_t gpa = (gpa2_t)sym("cuGetProcAddress_v2");
    void *self = NULL, *fn = NULL;
    int status = -1;
    if (gpa("cuGetProcAddress", &self, 12000, 0, &status) || !self) return NULL;
    if (((gpa2_t)self)(name, &fn, version, flags, &status)) return NULL;
    return fn;
}

int main(void) {
    lib = dlopen("libcuda.so.1", RTLD_NOW);
    if (!lib) { printf("nolib\n"); return 0; }
    char cmd[64];
    unsigned long long a, b, c;
    while (scanf("%63s", cmd) == 1) {
        CUdeviceptr p = 0;
        CUresult rc = 0;
        if (!strcmp(cmd, "quit")) break;
        if (!strcmp(cmd, "init")) {
            int dev; void *ctx;
            rc = ((init_t)sym("cuInit"))(0);
            rc |= ((device_get_t)sym("cuDeviceGet"))(&dev, 0);
            rc |= ((ctx_create_t)sym("cuCtxCreate_v2"))(&ctx, 0, dev);
            printf("rc %d\n", rc);
        } else if (!strcmp(cmd, "alloc") && scanf("%llu", &a) == 1) {
            rc = ((alloc_t)sym("cuMemAlloc_v2"))(&p, a);
            printf("ptr 0x%llx rc %d\n", p, rc);
        } else if (!strcmp(cmd, "procalloc") && scanf("%llu", &a) == 1) {
            alloc_t f = (alloc_t)proc("cuMemAlloc", 12000, 0);
            rc = f ? f(&p, a) : -1;
            printf("ptr 0x%llx rc %d\n", p, rc);
        } else if (!strcmp(cmd, "procalloc11") && scanf("%llu", &a) == 1) {
            gpa1_t gpa = (gpa1_t)sym("cuGetProcAddress");
            void *f = NULL;
            rc = gpa("cuMemAlloc", &f, 11080, 0);
            rc = rc ? rc : ((alloc_t)f)(&p, a);
            printf("ptr 0x%llx rc %d\n", p, rc);
        } else if (!strcmp(cmd, "pitch") && scanf("%llu %llu %llu", &a, &b, &c) == 3) {
            size_t pitch = 0;
            rc = ((pitch_t)sym("cuMemAllocPitch_v2"))(&p, &pitch, a, b, (unsigned)c);
            printf("ptr 0x%llx pitch %zu rc %d\n", p, pitch, rc);
        } else if (!strcmp(cmd, "async") && scanf("%llu", &a) == 1) {
            alloc_async_t f = (alloc_async_t)proc("cuMemAllocAsync", 12000, 2);
            rc = f ? f(&p, a, NULL) : -1;
            printf("ptr 0x%llx rc %d\n", p, rc);
        } else if (!strcmp(cmd, "legacy") && scanf("%llu", &a) == 1) {
            unsigned int p1 = 0;
            rc = ((alloc_v1_t)sym("cuMemAlloc"))(&p1, (unsigned)a);
            printf("ptr 0x%x rc %d\n", p1, rc);
        } else if (!strcmp(cmd, "free") && scanf("%llx", &a) == 1) {
            free_t f = (free_t)proc("cuMemFree", 12000, 0);
            printf("rc %d\n", f ? f(a) : -1);
        } else if (!strcmp(cmd, "freeasync_ptsz") && scanf("%llx", &a) == 1) {
            free_async_t f = (free_async_t)proc("cuMemFreeAsync", 12000, 2);
            printf("rc %d\n", f ? f(a, NULL) : -1);
        } else if (!strcmp(cmd, "info")) {
            size_t fr = 0, tot = 0;
            info_t f = (info_t)proc("cuMemGetInfo", 12000, 0);
            rc = f ? f(&fr, &tot) : -1;
            printf("free %zu total %zu rc %d\n", fr, tot, rc);
        } else {
            printf("bad command %s\n", cmd);
        }
        fflush(stdout);
    }
    return 0;
}
