#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#include "CSynodSystem.h"

int synod_write_back(int fd, long long offset, long long count, int wait) {
    unsigned int flags = SYNC_FILE_RANGE_WRITE;
    if (wait) {
        flags |= SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER;
    }
    return sync_file_range(fd, (off64_t)offset, (off64_t)count, flags);
}

int synod_lower_thread_priority(int amount) {
    id_t thread = (id_t)gettid();
    errno = 0;
    int current = getpriority(PRIO_PROCESS, thread);
    if (current == -1 && errno != 0) {
        return -1;
    }
    int wanted = current + amount;
    if (wanted > 19) {
        wanted = 19;
    }
    return setpriority(PRIO_PROCESS, thread, wanted);
}

#if defined(__x86_64__)
#include <nmmintrin.h>

int synod_crc32c_hardware(void) {
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

__attribute__((target("sse4.2")))
unsigned int synod_crc32c_update_hardware(unsigned int crc, const void *bytes, unsigned long count) {
    const unsigned char *next = (const unsigned char *)bytes;
    unsigned long long reg = (unsigned int)~crc;
    while (count >= 8) {
        unsigned long long word;
        __builtin_memcpy(&word, next, 8);  /* unaligned load; little-endian on x86-64 */
        reg = _mm_crc32_u64(reg, word);
        next += 8;
        count -= 8;
    }
    unsigned int reg32 = (unsigned int)reg;
    while (count > 0) {
        reg32 = _mm_crc32_u8(reg32, *next);
        next += 1;
        count -= 1;
    }
    return ~reg32;
}
#else
int synod_crc32c_hardware(void) {
    return 0;
}

unsigned int synod_crc32c_update_hardware(unsigned int crc, const void *bytes, unsigned long count) {
    (void)bytes;
    (void)count;
    return crc;
}
#endif
