#include "drivers/serial/pl011.hpp"

#include "arch/mmio.hpp"
#include "common/wait.hpp"

namespace moat {

namespace {
constexpr uint64_t kCharTimeoutNs = 10 * 1000 * 1000;  // far beyond one character at 9600 baud
}

void Pl011::putc(char c) {
    auto fr = [&] { return mmio::read32(base_ + static_cast<uint32_t>(Reg32::FR)); };
    if (wait_until(kCharTimeoutNs, [&] { return (fr() & kFrTxff) == 0; }) != Status::ok) {
        dropped_++;
        return;
    }
    mmio::write32(base_ + static_cast<uint32_t>(Reg32::DR), static_cast<uint8_t>(c));
}

void Pl011::write(const char* s, size_t n) {
    if (!base_) return;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') putc('\r');
        putc(s[i]);
    }
}

}  // namespace moat
