// Host builds have no caches to clean; the count lets tests prove that a non-coherent
// configuration really asks for cleaning, and for which bytes.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace moat::cache {

struct CleanLog {
    uint64_t calls = 0;
    uint64_t bytes = 0;
};
CleanLog& clean_log();

inline void sync_for_device(const void*, size_t n) {
    clean_log().calls++;
    clean_log().bytes += n;
}

inline void sync_for_cpu(const void*, size_t n) {
    clean_log().calls++;
    clean_log().bytes += n;
}

}  // namespace moat::cache
