// printf-style formatting without libc stdio: %s %c %d %i %u %x %X %p %%, with the l/ll/z
// length modifiers, '0' and '-' flags and a field width. Checked by the compiler's format
// attribute. Output goes to a Sink (console, fixed buffer).
#pragma once
#include <stdarg.h>

#include "common/types.hpp"

namespace moat {

class Sink {
public:
    virtual void write(const char* s, size_t n) = 0;
protected:
    ~Sink() = default;
};

// A fixed buffer that always stays NUL-terminated and drops what does not fit.
class BufferSink final : public Sink {
public:
    BufferSink(char* buf, size_t cap) : buf_(buf), cap_(cap) { if (cap_) buf_[0] = 0; }
    void write(const char* s, size_t n) override;
    size_t length() const { return len_; }
    bool truncated() const { return truncated_; }
private:
    char* buf_;
    size_t cap_;
    size_t len_ = 0;
    bool truncated_ = false;
};

void vformat(Sink& out, const char* fmt, va_list ap);
__attribute__((format(printf, 2, 3))) void format(Sink& out, const char* fmt, ...);
// Formats into buf (always terminated); returns the length written.
__attribute__((format(printf, 3, 4))) size_t format_to(char* buf, size_t cap, const char* fmt, ...);

// The console: whatever arch::console_write reaches.
Sink& console();
__attribute__((format(printf, 1, 2))) void print(const char* fmt, ...);
// From now on several CPUs print: each console write takes the console's IrqSpinlock (a leaf
// lock) and print() hands over a whole line at once, so lines never interleave. Called before a
// second CPU starts, with the MMU on (the lock needs exclusives); until then there is no lock.
void console_shared();

}  // namespace moat
