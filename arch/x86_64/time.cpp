// TSC calibration against the PIT: channel 2 counts down 10 ms (its 1.193182 MHz clock is the
// same on every PC), gated through port 0x61, and the TSC ticks in that time give its rate.
// The wait for the PIT is bounded by TSC ticks, so a missing PIT leaves the guess in place.
#include "arch/time.hpp"
#include "arch/x86_64/pio.hpp"
#include "arch/x86_64/time.hpp"

namespace moat::arch {

uint64_t g_tsc_per_us = 1000;  // 1 GHz until calibrated

bool calibrate_tsc() {
    constexpr uint32_t kPitHz = 1193182;
    constexpr uint16_t kCount = kPitHz / 100;  // 10 ms
    uint8_t gate = pio::in8(0x61);
    pio::out8(0x61, static_cast<uint8_t>((gate & ~0x02u) | 0x01u));  // speaker off, gate on
    pio::out8(0x43, 0xb0);                                          // channel 2, lo/hi, mode 0
    pio::out8(0x42, kCount & 0xff);
    pio::out8(0x42, kCount >> 8);
    uint64_t start = rdtsc();
    bool done = false;
    while (rdtsc() - start < 10'000'000'000ull) {  // 10 s even at 1 GHz: the PIT answers long before
        if (pio::in8(0x61) & 0x20) {                // OUT2 high: the count reached zero
            done = true;
            break;
        }
    }
    uint64_t ticks = rdtsc() - start;
    pio::out8(0x61, gate);
    if (!done || ticks < 10'000) return false;
    g_tsc_per_us = ticks / 10'000;
    return true;
}

}  // namespace moat::arch
