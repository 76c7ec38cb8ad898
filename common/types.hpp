// Basic types and helpers shared by every layer. Freestanding: only compiler-provided headers.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace moat {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;
constexpr uint64_t GiB = 1024 * MiB;
constexpr uint64_t kPageSize = 4 * KiB;
constexpr unsigned kPageShift = 12;

constexpr bool is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
constexpr uint64_t align_down(uint64_t v, uint64_t a) { return v & ~(a - 1); }
constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }
constexpr bool is_aligned(uint64_t v, uint64_t a) { return (v & (a - 1)) == 0; }

template <class T> constexpr T min(T a, T b) { return a < b ? a : b; }
template <class T> constexpr T max(T a, T b) { return a < b ? b : a; }

// Mask of bits [hi:lo], inclusive, as a compile-time constant.
constexpr uint64_t bits(unsigned hi, unsigned lo) {
    return (hi >= 63 ? ~0ull : ((1ull << (hi + 1)) - 1)) & ~((1ull << lo) - 1);
}
constexpr uint64_t bit(unsigned n) { return 1ull << n; }

// A register field: a mask and its shift, for reading and building values.
struct Field {
    uint64_t mask;
    unsigned shift;
    constexpr Field(unsigned hi, unsigned lo) : mask(bits(hi, lo)), shift(lo) {}
    constexpr uint64_t get(uint64_t reg) const { return (reg & mask) >> shift; }
    constexpr uint64_t make(uint64_t v) const { return (v << shift) & mask; }
    constexpr uint64_t set(uint64_t reg, uint64_t v) const { return (reg & ~mask) | make(v); }
    constexpr bool fits(uint64_t v) const { return (make(v) >> shift) == v; }
};

// a + b without wrapping past 2^64; false when it would.
constexpr bool add_overflows(uint64_t a, uint64_t b) { return a + b < a; }

// [a, a + as) and [b, b + bs) share a byte (neither may wrap past 2^64).
constexpr bool overlaps(uint64_t a, uint64_t as, uint64_t b, uint64_t bs) { return a < b + bs && b < a + as; }

}  // namespace moat
