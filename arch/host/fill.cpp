#include "arch/fill.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace moat::arch::host {

#if defined(__x86_64__)
const bool g_fill_avx2 = [] {
    __builtin_cpu_init();  // a static initialiser may run before the library's own
    return __builtin_cpu_supports("avx2") != 0;
}();

// Two independent 32-byte stores per 64-byte line, each of four consecutive values.
__attribute__((target("avx2"))) void fill_step_avx2(uint64_t* p, size_t n, uint64_t first, uint64_t step) {
    size_t i = 0;
    if (n >= 8) {
        const long long s = static_cast<long long>(step), f = static_cast<long long>(first);
        __m256i a = _mm256_set_epi64x(f + 3 * s, f + 2 * s, f + s, f);
        __m256i b = _mm256_add_epi64(a, _mm256_set1_epi64x(4 * s));
        const __m256i s8 = _mm256_set1_epi64x(8 * s);
        for (; i + 8 <= n; i += 8) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i), a);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i + 4), b);
            a = _mm256_add_epi64(a, s8);
            b = _mm256_add_epi64(b, s8);
        }
    }
    fill_step_portable(p + i, n - i, first + i * step, step);
}
#else
const bool g_fill_avx2 = false;
void fill_step_avx2(uint64_t* p, size_t n, uint64_t first, uint64_t step) { fill_step_portable(p, n, first, step); }
#endif

}  // namespace moat::arch::host
