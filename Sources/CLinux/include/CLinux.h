#ifndef CLINUX_H
#define CLINUX_H

// Linux interfaces the Swift Glibc module does not export: epoll and eventfd for the
// event loop, and GNU extensions (which need _GNU_SOURCE) wrapped as shims.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <pthread.h>
#include <malloc.h>

/// accept4(2): accept with SOCK_NONBLOCK/SOCK_CLOEXEC in one call.
int CLinux_accept4(int fd, int flags);

/// pthread_setname_np(3) for the calling thread (names are cut to 15 bytes by Linux).
void CLinux_setThreadName(const char *name);

#endif
