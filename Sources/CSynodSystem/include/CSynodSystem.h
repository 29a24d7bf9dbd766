#ifndef CSYNOD_SYSTEM_H
#define CSYNOD_SYSTEM_H

/// Linux calls that Glibc's Swift module does not expose (they need _GNU_SOURCE).

/// Starts writeback of `count` bytes at `offset` of `fd` (sync_file_range with
/// SYNC_FILE_RANGE_WRITE) and, when `wait` is non-zero, waits until they are written
/// (adding SYNC_FILE_RANGE_WAIT_BEFORE and SYNC_FILE_RANGE_WAIT_AFTER). Not a sync: no
/// metadata, no device cache flush. Returns 0, or -1 with errno set.
int synod_write_back(int fd, long long offset, long long count, int wait);

/// Raises the calling thread's nice value by `amount` (on Linux nice values are per thread),
/// at most to 19. Lowering one's own priority needs no privilege. Returns 0, or -1 with
/// errno set (the priority is then unchanged).
int synod_lower_thread_priority(int amount);

/// Non-zero when this CPU computes CRC-32C in hardware (SSE4.2 on x86-64) and
/// `synod_crc32c_update_hardware` may be called; 0 elsewhere (the caller then uses its
/// software loop).
int synod_crc32c_hardware(void);

/// Extends `crc`, the CRC-32C (Castagnoli, initial value and final xor 0xFFFFFFFF) of some
/// bytes, over `count` more bytes at `bytes`, with the CPU's CRC32 instruction. Only when
/// `synod_crc32c_hardware()` is non-zero.
unsigned int synod_crc32c_update_hardware(unsigned int crc, const void *bytes, unsigned long count);

#endif
