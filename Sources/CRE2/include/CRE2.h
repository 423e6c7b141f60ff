#ifndef CRE2_H
#define CRE2_H
// A C interface to RE2 (Debian libre2-dev), whose own API is C++: compile a pattern under
// a memory budget, full-match UTF-8 bytes against it, free it. RE2 matches in time
// linear in the input, whatever the pattern.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A compiled pattern. Immutable once compiled: matching from many threads at once is safe.
typedef struct cre2_pattern cre2_pattern;

/// Compiles `length` bytes of UTF-8 at `pattern` (RE2 syntax), using at most `max_memory`
/// bytes for the compiled program and its matching caches. On failure returns NULL and
/// writes RE2's error text, NUL-terminated and cut to `error_capacity`, into `error`.
cre2_pattern *cre2_compile(const char *pattern, size_t length, int64_t max_memory, char *error, size_t error_capacity);

/// 1 when the whole of `length` bytes at `text` matches, else 0.
int cre2_full_match(const cre2_pattern *compiled, const char *text, size_t length);

/// Frees a pattern from `cre2_compile` (NULL is ignored).
void cre2_free(cre2_pattern *compiled);

#ifdef __cplusplus
}
#endif

#endif
