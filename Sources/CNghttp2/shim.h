#ifndef CNGHTTP2_SHIM_H
#define CNGHTTP2_SHIM_H
// The Debian 12 nghttp2 (1.52) API: no `*2` functions are used anywhere.
#include <nghttp2/nghttp2.h>
#endif
