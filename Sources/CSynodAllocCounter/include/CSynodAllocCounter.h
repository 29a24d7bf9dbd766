#ifndef SYNOD_ALLOC_COUNTER_H
#define SYNOD_ALLOC_COUNTER_H
#include <stdint.h>

/// Heap allocations (malloc, calloc, realloc) made by the calling thread so far.
/// Counting is active only in executables that link this target.
uint64_t synod_thread_allocation_count(void);

#endif
