// A console UART. Drivers implement write(); selection from the device tree is in select.cpp.
#pragma once
#include "common/fdt.hpp"

namespace moat {

class Serial {
public:
    virtual void write(const char* s, size_t n) = 0;
    virtual const char* name() const = 0;
protected:
    ~Serial() = default;
};

// The node /chosen/stdout-path names ("path:options" or an alias), or < 0.
int stdout_node(const dt::Tree& t);
// The UART /chosen/stdout-path names, if a driver here knows it; nullptr otherwise.
Serial* serial_from_dt(const dt::Tree& t);

}  // namespace moat
