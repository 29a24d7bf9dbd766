// Counts heap allocations per thread for `synod bench core` ("allocations per command").
//
// The executable that links this file interposes malloc, calloc and realloc and forwards
// them to glibc's own implementations (__libc_*), counting each call in a thread-local
// counter. free and the aligned allocators are left to glibc, which accepts pointers from
// either path. Thread-local counters keep the hot path free of shared atomics.
#include "CSynodAllocCounter.h"
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);

static __thread uint64_t allocations __attribute__((tls_model("initial-exec")));

void *malloc(size_t size) {
    allocations++;
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    allocations++;
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    allocations++;
    return __libc_realloc(pointer, size);
}

uint64_t synod_thread_allocation_count(void) {
    return allocations;
}
