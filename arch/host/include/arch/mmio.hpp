// Device register access in host builds: every access goes to the register model mapped at that
// address (tests/models attach them). An access nobody claims is recorded, so a test can assert
// that a driver never touched an address it had no business with.
#pragma once
#include <stdint.h>

namespace moat::mmio {

class Device {
public:
    virtual uint64_t read(uint64_t offset, unsigned bytes) = 0;
    virtual void write(uint64_t offset, uint64_t value, unsigned bytes) = 0;
protected:
    ~Device() = default;
};

// Maps [base, base + size) to a model; false if it overlaps an existing mapping or the table is full.
bool attach(uintptr_t base, uint64_t size, Device* dev);
void detach(Device* dev);
// Accesses that hit no model since the last reset, and the last such address.
uint64_t stray_accesses();
uintptr_t last_stray_address();
void reset_strays();

uint32_t read32(uintptr_t a);
uint64_t read64(uintptr_t a);
void write32(uintptr_t a, uint32_t v);
void write64(uintptr_t a, uint64_t v);

}  // namespace moat::mmio
