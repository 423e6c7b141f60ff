#define _GNU_SOURCE
#include <string.h>
#include "CLinux.h"

int CLinux_accept4(int fd, int flags) {
    return accept4(fd, NULL, NULL, flags);
}

void CLinux_setThreadName(const char *name) {
    char shortName[16];
    strncpy(shortName, name, sizeof shortName - 1);
    shortName[sizeof shortName - 1] = '\0';
    pthread_setname_np(pthread_self(), shortName);
}
