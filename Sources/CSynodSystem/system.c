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
