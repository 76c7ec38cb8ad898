#include "common/format.hpp"

#include "arch/console.hpp"
#include "common/lock.hpp"

namespace moat {

void BufferSink::write(const char* s, size_t n) {
    if (cap_ == 0) return;
    size_t room = cap_ - 1 - len_;
    if (n > room) {
        n = room;
        truncated_ = true;
    }
    for (size_t i = 0; i < n; i++) buf_[len_ + i] = s[i];
    len_ += n;
    buf_[len_] = 0;
}

namespace {

void pad(Sink& out, char c, int n) {
    for (; n > 0; n--) out.write(&c, 1);
}

void emit_number(Sink& out, uint64_t v, bool neg, unsigned base, bool upper, int width, bool zero, bool left) {
    char tmp[24];
    int n = 0;
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    int len = n + (neg ? 1 : 0);
    if (!left && !zero) pad(out, ' ', width - len);
    if (neg) out.write("-", 1);
    if (!left && zero) pad(out, '0', width - len);
    while (n) out.write(&tmp[--n], 1);
    if (left) pad(out, ' ', width - len);
}

size_t cstrlen(const char* s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

}  // namespace

void vformat(Sink& out, const char* fmt, va_list ap) {
    while (*fmt) {
        const char* lit = fmt;
        while (*fmt && *fmt != '%') fmt++;
        if (fmt != lit) out.write(lit, static_cast<size_t>(fmt - lit));
        if (!*fmt) break;
        fmt++;  // '%'
        bool zero = false, left = false;
        for (;; fmt++) {
            if (*fmt == '0') zero = true;
            else if (*fmt == '-') left = true;
            else break;
        }
        int width = 0;
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        int lng = 0;
        while (*fmt == 'l' || *fmt == 'z') {
            lng = *fmt == 'z' ? 2 : lng + 1;
            fmt++;
        }
        char conv = *fmt ? *fmt++ : 0;
        switch (conv) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
            emit_number(out, mag, v < 0, 10, false, width, zero, left);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            emit_number(out, v, false, conv == 'u' ? 10 : 16, conv == 'X', width, zero, left);
            break;
        }
        case 'p': {
            uint64_t v = reinterpret_cast<uintptr_t>(va_arg(ap, void*));
            out.write("0x", 2);
            emit_number(out, v, false, 16, false, width, zero, left);
            break;
        }
        case 'c': {
            char c = static_cast<char>(va_arg(ap, int));
            out.write(&c, 1);
            break;
        }
        case 's': {
            const char* s = va_arg(ap, const char*);
            if (!s) s = "(null)";
            size_t n = cstrlen(s);
            if (!left) pad(out, ' ', width - static_cast<int>(n));
            out.write(s, n);
            if (left) pad(out, ' ', width - static_cast<int>(n));
            break;
        }
        case '%': out.write("%", 1); break;
        default: out.write("%?", 2); break;
        }
    }
}

void format(Sink& out, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vformat(out, fmt, ap);
    va_end(ap);
}

size_t format_to(char* buf, size_t cap, const char* fmt, ...) {
    BufferSink s(buf, cap);
    va_list ap;
    va_start(ap, fmt);
    vformat(s, fmt, ap);
    va_end(ap);
    return s.length();
}

namespace {
IrqSpinlock g_console_lock;
bool g_console_shared = false;

class ConsoleSink final : public Sink {
public:
    void write(const char* s, size_t n) override {
        if (!__atomic_load_n(&g_console_shared, __ATOMIC_ACQUIRE)) return arch::console_write(s, n);
        IrqLockGuard g(g_console_lock);
        arch::console_write(s, n);
    }
};
ConsoleSink g_console;
}  // namespace

Sink& console() { return g_console; }

void console_shared() { __atomic_store_n(&g_console_shared, true, __ATOMIC_RELEASE); }

void print(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (!__atomic_load_n(&g_console_shared, __ATOMIC_ACQUIRE)) {
        vformat(g_console, fmt, ap);
        va_end(ap);
        return;
    }
    // One write per line: formatted on the stack first (a longer one goes out in pieces).
    va_list again;
    va_copy(again, ap);
    char line[256];
    BufferSink b(line, sizeof line);
    vformat(b, fmt, ap);
    if (b.truncated()) vformat(g_console, fmt, again);
    else g_console.write(line, b.length());
    va_end(again);
    va_end(ap);
}

}  // namespace moat
