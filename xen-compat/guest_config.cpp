#include "xen-compat/guest_config.hpp"

#include <string.h>

namespace moat::xen {

namespace {

enum class Section : uint8_t { none, guest, virtio, pci, pci_device, passthrough };

constexpr unsigned kMaxKeys = 10;
struct SectionDef {
    Section section;
    const char* name;
    const char* keys[kMaxKeys];
    const char* required;  // a key the section cannot do without, or nullptr
};
constexpr SectionDef kSections[] = {
    {Section::guest, "guest",
     {"name", "memory", "vcpus", "gic", "console", "bootargs", "xen-version", "grant-table", "evtchn-irq"}, "memory"},
    {Section::virtio, "virtio-mmio", {"backend", "grants", "base", "irq"}, nullptr},
    {Section::pci, "pci", {"ecam", "mem", "irq"}, nullptr},
    {Section::pci_device, "pci-device", {"bdf", "backend", "grants"}, "bdf"},
    {Section::passthrough, "passthrough", {"path", "reg", "irq", "force-assign-without-iommu"}, "path"},
};

constexpr size_t kValueMax = 512;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// A view of part of the input.
struct Text {
    const char* p;
    size_t n;
    bool is(const char* s) const { return strlen(s) == n && strncmp(p, s, n) == 0; }
    // A NUL-terminated copy for messages (moat's formatter has no %.*s), cut to fit.
    template <size_t N>
    const char* z(char (&buf)[N]) const {
        size_t k = n < N - 1 ? n : N - 1;
        memcpy(buf, p, k);
        buf[k] = 0;
        return buf;
    }
    Text trimmed() const {
        Text t = *this;
        while (t.n && is_space(*t.p)) t.p++, t.n--;
        while (t.n && is_space(t.p[t.n - 1])) t.n--;
        return t;
    }
};

// Levenshtein distance of two short strings (keys), for "did you mean".
unsigned distance(Text a, const char* b) {
    size_t nb = strlen(b);
    if (a.n > 31 || nb > 31) return 99;
    unsigned row[32];
    for (size_t j = 0; j <= nb; j++) row[j] = static_cast<unsigned>(j);
    for (size_t i = 1; i <= a.n; i++) {
        unsigned diag = row[0];
        row[0] = static_cast<unsigned>(i);
        for (size_t j = 1; j <= nb; j++) {
            unsigned up = row[j];
            unsigned cost = a.p[i - 1] == b[j - 1] ? 0 : 1;
            row[j] = min(min(row[j] + 1, row[j - 1] + 1), diag + cost);
            diag = up;
        }
    }
    return row[nb];
}

bool parse_u64(Text t, uint64_t& out, bool size_suffix) {
    t = t.trimmed();
    if (t.n == 0) return false;
    uint64_t base = 10, v = 0;
    size_t i = 0;
    if (t.n > 2 && t.p[0] == '0' && (t.p[1] == 'x' || t.p[1] == 'X')) base = 16, i = 2;
    size_t digits = 0;
    for (; i < t.n; i++, digits++) {
        char c = t.p[i];
        uint64_t d;
        if (c >= '0' && c <= '9') d = static_cast<uint64_t>(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f') d = static_cast<uint64_t>(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F') d = static_cast<uint64_t>(c - 'A' + 10);
        else break;
        if (v > (~0ull - d) / base) return false;
        v = v * base + d;
    }
    if (digits == 0) return false;
    if (i < t.n && size_suffix) {
        unsigned shift = 0;
        switch (t.p[i]) {
        case 'K': case 'k': shift = 10; break;
        case 'M': case 'm': shift = 20; break;
        case 'G': case 'g': shift = 30; break;
        default: return false;
        }
        i++;
        if (i < t.n && (t.p[i] == 'B' || t.p[i] == 'b')) i++;
        if (v > (~0ull >> shift)) return false;
        v <<= shift;
    }
    if (i != t.n) return false;
    out = v;
    return true;
}

// Splits on blanks and commas; returns false past `max` items or on a bad number.
bool parse_list(Text t, uint64_t* out, unsigned max, unsigned& count) {
    count = 0;
    size_t i = 0;
    while (i < t.n) {
        while (i < t.n && (is_space(t.p[i]) || t.p[i] == ',')) i++;
        size_t start = i;
        while (i < t.n && !is_space(t.p[i]) && t.p[i] != ',') i++;
        if (i == start) break;
        if (count == max || !parse_u64(Text{t.p + start, i - start}, out[count], false)) return false;
        count++;
    }
    return count > 0;
}

struct Parser {
    const char* file;
    GuestDesc& g;
    Sink& err;
    unsigned errors = 0;
    uint32_t line = 0;
    const SectionDef* sec = nullptr;
    uint32_t sec_line = 0;
    uint32_t key_line[kMaxKeys] = {};
    bool guest_seen = false, pci_explicit = false;
    bool bad_section = false;  // inside an unknown (or one too many) section: its keys are skipped

    __attribute__((format(printf, 3, 4))) void error_at(uint32_t at, const char* fmt, ...) {
        if (at) format(err, "%s:%u: ", file, at);
        else format(err, "%s: ", file);
        va_list ap;
        va_start(ap, fmt);
        vformat(err, fmt, ap);
        va_end(ap);
        format(err, "\n");
        errors++;
    }
    // The message for a value that does not parse: key, the value as written, what it should be.
    void bad_value(Text key, Text value, const char* expected) {
        char k[32], v[64];
        error_at(line, "%s: '%s' is not %s", key.z(k), value.z(v), expected);
    }

    void finish_section() {
        if (!sec || !sec->required) return;
        for (unsigned k = 0; k < kMaxKeys && sec->keys[k]; k++)
            if (strcmp(sec->keys[k], sec->required) == 0 && key_line[k] == 0)
                error_at(sec_line, "[%s] has no %s", sec->name, sec->required);
    }

    void start_section(Text name) {
        finish_section();
        sec = nullptr;
        for (const SectionDef& d : kSections)
            if (name.is(d.name)) sec = &d;
        bad_section = !sec;
        if (!sec) {
            char b[32];
            error_at(line, "unknown section [%s] (sections: guest, virtio-mmio, pci, pci-device, passthrough)", name.z(b));
            return;
        }
        sec_line = line;
        for (uint32_t& l : key_line) l = 0;
        switch (sec->section) {
        case Section::guest:
            if (guest_seen) error_at(line, "a second [guest] section (the first is on line %u)", g.line);
            guest_seen = true;
            g.line = line;
            break;
        case Section::virtio:
            if (g.nvirtio == kGuestMaxVirtioMmio) return too_many(kGuestMaxVirtioMmio);
            g.virtio[g.nvirtio++] = GuestVirtioMmio{0, 0, 0, Grants::automatic, line};
            break;
        case Section::pci:
            if (pci_explicit) error_at(line, "a second [pci] section (the first is on line %u)", g.pci.line);
            pci_explicit = g.pci.present = true;
            g.pci.line = line;
            break;
        case Section::pci_device:
            if (g.pci.ndevices == kGuestMaxPciDevices) return too_many(kGuestMaxPciDevices);
            if (!g.pci.present) g.pci.present = true, g.pci.line = line;
            g.pci.devices[g.pci.ndevices++] = GuestPciDevice{0, 0, Grants::automatic, line};
            break;
        case Section::passthrough:
            if (g.npassthrough == kGuestMaxPassthrough) return too_many(kGuestMaxPassthrough);
            g.passthrough[g.npassthrough] = GuestPassthrough{};
            g.passthrough[g.npassthrough++].line = line;
            break;
        case Section::none: break;
        }
    }

    // The keys of a section past the limit are skipped, not applied to the last device.
    void too_many(unsigned max) {
        error_at(line, "more than %u [%s] sections", max, sec->name);
        sec = nullptr;
        bad_section = true;
    }

    void unknown_key(Text key) {
        const char* best = nullptr;
        unsigned bd = 3;
        for (unsigned k = 0; k < kMaxKeys && sec->keys[k]; k++) {
            unsigned d = distance(key, sec->keys[k]);
            if (d < bd) bd = d, best = sec->keys[k];
        }
        char k[32];
        if (best) error_at(line, "unknown key '%s' in [%s] (did you mean '%s'?)", key.z(k), sec->name, best);
        else error_at(line, "unknown key '%s' in [%s]", key.z(k), sec->name);
    }

    bool number(Text key, Text v, uint64_t lo, uint64_t hi, uint64_t& out, const char* what) {
        if (!parse_u64(v, out, false) || out < lo || out > hi) return bad_value(key, v, what), false;
        return true;
    }
    bool pair(Text key, Text v, uint64_t& a, uint64_t& b) {
        uint64_t l[2];
        unsigned n;
        if (!parse_list(v, l, 2, n) || n != 2) return bad_value(key, v, "'BASE SIZE' (two numbers)"), false;
        a = l[0], b = l[1];
        return true;
    }
    bool grants(Text key, Text v, Grants& out) {
        if (v.is("auto")) out = Grants::automatic;
        else if (v.is("yes") || v.is("on") || v.is("true")) out = Grants::on;
        else if (v.is("no") || v.is("off") || v.is("false")) out = Grants::off;
        else return bad_value(key, v, "auto, yes or no"), false;
        return true;
    }
    bool copy(Text key, Text v, char* dst, size_t cap) {
        char k[32];
        if (v.n >= cap) return error_at(line, "%s is longer than %zu characters", key.z(k), cap - 1), false;
        memcpy(dst, v.p, v.n);
        dst[v.n] = 0;
        return true;
    }

    void guest_key(Text k, Text v) {
        uint64_t x, y;
        if (k.is("name")) {
            copy(k, v, g.name, sizeof g.name);
        } else if (k.is("memory")) {
            g.memory_line = line;
            if (!parse_u64(v, x, true)) bad_value(k, v, "a size (bytes, or with K, M or G)");
            else if (set_guest_memory(g, x) != Status::ok)
                error_at(line, "memory: %lu bytes is not a whole number of 4 KiB pages between 4 KiB and 1019 GiB", x);
        } else if (k.is("vcpus")) {
            if (number(k, v, 1, kGuestMaxVcpus, x, "a vCPU count (1..32)")) g.vcpus = static_cast<unsigned>(x);
        } else if (k.is("gic")) {
            if (v.is("v2") || v.is("2")) g.gic_version = 2;
            else if (v.is("v3") || v.is("3")) g.gic_version = 3;
            else bad_value(k, v, "v2 or v3");
        } else if (k.is("console")) {
            if (v.is("pl011")) g.console = Console::pl011;
            else if (v.is("hvc")) g.console = Console::hvc;
            else if (v.is("none")) g.console = Console::none;
            else bad_value(k, v, "pl011, hvc or none");
        } else if (k.is("bootargs")) {
            copy(k, v, g.bootargs, sizeof g.bootargs);
        } else if (k.is("xen-version")) {
            const char* dot = static_cast<const char*>(memchr(v.p, '.', v.n));
            Text maj{v.p, dot ? static_cast<size_t>(dot - v.p) : v.n}, mnr{dot ? dot + 1 : v.p, dot ? v.n - maj.n - 1 : 0};
            if (!dot || !parse_u64(maj, x, false) || !parse_u64(mnr, y, false) || x == 0 || x > 0xffff || y > 0xffff)
                bad_value(k, v, "a version MAJOR.MINOR");
            else g.xen_major = static_cast<uint16_t>(x), g.xen_minor = static_cast<uint16_t>(y);
        } else if (k.is("grant-table")) {
            g.gnttab_line = line;
            pair(k, v, g.gnttab_base, g.gnttab_size);
        } else if (k.is("evtchn-irq")) {
            if (number(k, v, 16, 31, x, "a PPI INTID (16..31)")) g.evtchn_intid = static_cast<uint32_t>(x);
        }
    }

    void virtio_key(Text k, Text v) {
        GuestVirtioMmio& d = g.virtio[g.nvirtio - 1];
        uint64_t x;
        if (k.is("backend")) {
            if (number(k, v, 0, layout::kDomidFirstReserved - 1, x, "a domain id (0..32751)")) d.backend = static_cast<uint16_t>(x);
        } else if (k.is("grants")) {
            grants(k, v, d.grants);
        } else if (k.is("base")) {
            if (number(k, v, 1, ~0ull, x, "an address")) d.base = x;
        } else if (k.is("irq")) {
            if (number(k, v, 32, 1019, x, "an SPI INTID (32..1019)")) d.intid = static_cast<uint32_t>(x);
        }
    }

    void pci_key(Text k, Text v) {
        uint64_t x;
        if (k.is("ecam")) pair(k, v, g.pci.ecam_base, g.pci.ecam_size);
        else if (k.is("mem")) pair(k, v, g.pci.mem_base, g.pci.mem_size);
        else if (k.is("irq") && number(k, v, 32, 1016, x, "an SPI INTID (32..1016)")) g.pci.intid = static_cast<uint32_t>(x);
    }

    // "bb:dd.f" or "dd.f" (bus 0), hexadecimal as lspci prints them.
    static bool hex(Text t, size_t max_digits, uint64_t& out) {
        char buf[8] = "0x";
        if (t.n == 0 || t.n > max_digits) return false;
        memcpy(buf + 2, t.p, t.n);
        return parse_u64(Text{buf, t.n + 2}, out, false);
    }
    static bool bdf(Text v, uint16_t& rid) {
        uint64_t bus = 0, dev, fn;
        const char* colon = static_cast<const char*>(memchr(v.p, ':', v.n));
        Text rest = v;
        if (colon) {
            if (!hex(Text{v.p, static_cast<size_t>(colon - v.p)}, 2, bus)) return false;
            rest = Text{colon + 1, static_cast<size_t>(v.p + v.n - colon - 1)};
        }
        const char* dot = static_cast<const char*>(memchr(rest.p, '.', rest.n));
        if (!dot || !hex(Text{rest.p, static_cast<size_t>(dot - rest.p)}, 2, dev) ||
            !hex(Text{dot + 1, static_cast<size_t>(rest.p + rest.n - dot - 1)}, 1, fn) || dev > 31 || fn > 7)
            return false;
        rid = static_cast<uint16_t>(bus << 8 | dev << 3 | fn);
        return true;
    }

    void pci_device_key(Text k, Text v) {
        GuestPciDevice& d = g.pci.devices[g.pci.ndevices - 1];
        uint64_t x;
        if (k.is("bdf")) {
            if (!bdf(v, d.rid)) bad_value(k, v, "a PCI address bb:dd.f (hex; bus < 0x100, device < 0x20, function < 8)");
        } else if (k.is("backend")) {
            if (number(k, v, 0, layout::kDomidFirstReserved - 1, x, "a domain id (0..32751)")) d.backend = static_cast<uint16_t>(x);
        } else if (k.is("grants")) {
            grants(k, v, d.grants);
        }
    }

    void passthrough_key(Text k, Text v) {
        GuestPassthrough& p = g.passthrough[g.npassthrough - 1];
        uint64_t list[kGuestMaxPtIrqs];
        unsigned n;
        if (k.is("path")) {
            if (v.n == 0 || v.p[0] != '/') bad_value(k, v, "a node path starting with '/'");
            else copy(k, v, p.host_path, sizeof p.host_path);
        } else if (k.is("reg")) {
            if (!parse_list(v, list, kGuestMaxPtRegs, n)) return bad_value(k, v, "a list of up to 4 guest addresses");
            p.nregs = n;
            for (unsigned i = 0; i < n; i++) p.regs[i] = list[i];
        } else if (k.is("irq")) {
            if (!parse_list(v, list, kGuestMaxPtIrqs, n)) return bad_value(k, v, "a list of up to 8 SPI INTIDs");
            p.nirqs = n;
            for (unsigned i = 0; i < n; i++) p.intids[i] = static_cast<uint32_t>(list[i]);
        } else if (k.is("force-assign-without-iommu")) {
            if (v.is("true")) p.force = true;
            else if (v.is("false")) p.force = false;
            else bad_value(k, v, "true or false");
        }
    }

    void key_value(Text k, Text v) {
        if (!sec) return;
        unsigned idx = kMaxKeys;
        for (unsigned i = 0; i < kMaxKeys && sec->keys[i]; i++)
            if (k.is(sec->keys[i])) idx = i;
        if (idx == kMaxKeys) return unknown_key(k);
        if (key_line[idx]) return error_at(line, "%s given twice in this [%s] (first on line %u)", sec->keys[idx], sec->name, key_line[idx]);
        key_line[idx] = line;
        switch (sec->section) {
        case Section::guest: guest_key(k, v); break;
        case Section::virtio: virtio_key(k, v); break;
        case Section::pci: pci_key(k, v); break;
        case Section::pci_device: pci_device_key(k, v); break;
        case Section::passthrough: passthrough_key(k, v); break;
        case Section::none: break;
        }
    }

    void parse_line(Text raw) {
        // Cut the comment, outside double quotes.
        bool quoted = false;
        size_t n = 0;
        for (; n < raw.n; n++) {
            if (raw.p[n] == '"') quoted = !quoted;
            else if (!quoted && (raw.p[n] == '#' || raw.p[n] == ';')) break;
        }
        Text t = Text{raw.p, n}.trimmed();
        if (t.n == 0) return;
        if (memchr(t.p, 0, t.n)) return error_at(line, "a NUL byte: this is not a text file");
        if (t.p[0] == '[') {
            if (t.p[t.n - 1] != ']') return error_at(line, "a section header must end with ']'");
            return start_section(Text{t.p + 1, t.n - 2}.trimmed());
        }
        const char* eq = static_cast<const char*>(memchr(t.p, '=', t.n));
        char b[64];
        if (!eq) return error_at(line, "expected 'key = value' or '[section]', got '%s'", t.z(b));
        Text k = Text{t.p, static_cast<size_t>(eq - t.p)}.trimmed();
        Text v = Text{eq + 1, static_cast<size_t>(t.p + t.n - eq - 1)}.trimmed();
        if (k.n == 0) return error_at(line, "a value without a key");
        if (v.n > kValueMax) return error_at(line, "%s: value longer than %zu characters", k.z(b), kValueMax);
        if (v.n && v.p[0] == '"') {
            if (v.n < 2 || v.p[v.n - 1] != '"') return error_at(line, "%s: unterminated quote", k.z(b));
            v = Text{v.p + 1, v.n - 2};
        }
        if (!sec && !bad_section) return error_at(line, "'%s' outside a section (start with [guest])", k.z(b));
        key_value(k, v);
    }
};

}  // namespace

Status parse_guest_config(const char* text, size_t len, const char* file, GuestDesc& out, Sink& err) {
    out = GuestDesc{};
    out.source = file;
    Parser p{file, out, err};
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && text[end] != '\n') end++;
        p.line++;
        p.parse_line(Text{text + i, end - i});
        i = end + 1;
    }
    p.finish_section();
    if (!p.guest_seen) p.error_at(0, "no [guest] section");
    return p.errors ? Status::invalid_argument : Status::ok;
}

}  // namespace moat::xen
