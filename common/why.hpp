// Why something was refused: the one way the DT layer and every driver say it. A refusal is a
// Status plus one line of text that names what was wrong (the node, the register, the field);
// whoever reports it prints that line as it is, the same way for every driver.
#pragma once
#include <stdarg.h>

#include "common/format.hpp"
#include "common/status.hpp"

namespace moat {

class Why {
public:
    static constexpr size_t kMax = 320;

    // Records the reason and returns `st`, so a refusal is one statement: return why_.set(...).
    __attribute__((format(printf, 3, 4))) Status set(Status st, const char* fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vset(st, fmt, ap);
        va_end(ap);
        return st;
    }
    Status vset(Status st, const char* fmt, va_list ap) {
        BufferSink s(text_, sizeof text_);
        vformat(s, fmt, ap);
        status_ = st;
        return st;
    }
    // Prefix what is already recorded with `prefix`: "<node path>: " when a caller knows the node.
    void prefix(const char* prefix) {
        char old[kMax];
        format_to(old, sizeof old, "%s", text_);
        format_to(text_, sizeof text_, "%s%s", prefix, old);
    }
    void clear() {
        text_[0] = 0;
        status_ = Status::ok;
    }
    const char* text() const { return text_; }
    Status status() const { return status_; }
    bool empty() const { return text_[0] == 0; }

private:
    char text_[kMax] = {};
    Status status_ = Status::ok;
};

}  // namespace moat
