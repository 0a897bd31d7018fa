/* Preloaded after the shim by tests/interposition.rs: wraps getppid through
 * dlsym(RTLD_NEXT, ...), which must still find libc's getppid (the library after this one),
 * not this wrapper, when the shim's dlsym sits in front. Returns -1 if it finds itself. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>

pid_t getppid(void) {
    pid_t (*next)(void) = (pid_t (*)(void))dlsym(RTLD_NEXT, "getppid");
    return next && next != getppid ? next() : -1;
}
