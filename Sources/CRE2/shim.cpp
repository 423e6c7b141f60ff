// The C interface of include/CRE2.h over RE2's C++ API. No C++ exception crosses into C:
// an allocation failure while compiling is reported as an error.
#include "CRE2.h"

#include <re2/re2.h>

#include <cstring>
#include <new>
#include <string>

struct cre2_pattern {
    re2::RE2 regex;
    cre2_pattern(const re2::StringPiece &pattern, const re2::RE2::Options &options) : regex(pattern, options) {}
};

static void cre2_copy_error(const std::string &text, char *error, size_t capacity) {
    if (error == nullptr || capacity == 0) return;
    size_t length = text.size() < capacity - 1 ? text.size() : capacity - 1;
    std::memcpy(error, text.data(), length);
    error[length] = '\0';
}

extern "C" cre2_pattern *cre2_compile(const char *pattern, size_t length, int64_t max_memory, char *error, size_t error_capacity) {
    re2::RE2::Options options;
    options.set_encoding(re2::RE2::Options::EncodingUTF8);
    // Errors go to the caller, not to stderr.
    options.set_log_errors(false);
    options.set_max_mem(max_memory);
    cre2_pattern *compiled = nullptr;
    try {
        compiled = new cre2_pattern(re2::StringPiece(pattern, length), options);
    } catch (...) {
        cre2_copy_error("out of memory", error, error_capacity);
        return nullptr;
    }
    if (!compiled->regex.ok()) {
        cre2_copy_error(compiled->regex.error(), error, error_capacity);
        delete compiled;
        return nullptr;
    }
    return compiled;
}

extern "C" int cre2_full_match(const cre2_pattern *compiled, const char *text, size_t length) {
    return re2::RE2::FullMatch(re2::StringPiece(text, length), compiled->regex) ? 1 : 0;
}

extern "C" void cre2_free(cre2_pattern *compiled) {
    delete compiled;
}
