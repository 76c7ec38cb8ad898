#include "common/acpi.hpp"

namespace moat::acpi {

namespace {

constexpr uint32_t kRsdpV1Size = 20;
constexpr uint32_t kRsdpV2Size = 36;

uint8_t sum(const uint8_t* p, uint64_t n) {
    uint8_t s = 0;
    for (uint64_t i = 0; i < n; i++) s = static_cast<uint8_t>(s + p[i]);
    return s;
}

// The four signature bytes, printable ('?' for anything else), for messages about bad tables.
void sig_text(const uint8_t* p, char out[5]) {
    for (unsigned i = 0; i < 4; i++) out[i] = p[i] >= 0x20 && p[i] < 0x7f ? static_cast<char>(p[i]) : '?';
    out[4] = 0;
}

}  // namespace

const uint8_t* PhysWindow::map(uint64_t pa, uint64_t len) const {
    if (pa < base || len > size || pa - base > size - len) return nullptr;
    return reinterpret_cast<const uint8_t*>(host + static_cast<uintptr_t>(pa - base));
}

Status read_table(const PhysWindow& mem, uint64_t pa, const char* sig, uint32_t min_length, Table& out, Why& why) {
    const char* want = sig ? sig : "table";
    const uint8_t* h = mem.map(pa, kHeaderSize);
    if (!h) return why.set(Status::bad_acpi, "%s at 0x%lx: offset 0: its header lies outside the %lu MiB the tables may use", want,
                           pa, mem.size / MiB);
    char s[5];
    sig_text(h, s);
    if (sig && __builtin_memcmp(h, sig, 4) != 0)
        return why.set(Status::bad_acpi, "%s at 0x%lx: offset 0: signature is \"%s\"", sig, pa, s);
    uint32_t len = static_cast<uint32_t>(le(h + 4, 4));
    uint32_t need = min_length > kHeaderSize ? min_length : kHeaderSize;
    if (len < need) return why.set(Status::bad_acpi, "%s at 0x%lx: offset 4: length %u is shorter than the %u bytes it must hold", s, pa, len, need);
    if (len > kMaxTableSize) return why.set(Status::bad_acpi, "%s at 0x%lx: offset 4: length %u is beyond %u", s, pa, len, kMaxTableSize);
    const uint8_t* all = mem.map(pa, len);
    if (!all) return why.set(Status::bad_acpi, "%s at 0x%lx: offset 4: length %u runs past the end of the memory the tables may use", s, pa, len);
    if (uint8_t c = sum(all, len); c != 0)
        return why.set(Status::bad_acpi, "%s at 0x%lx: offset 9: checksum 0x%02x does not make the %u bytes sum to 0 (they sum to 0x%02x)",
                       s, pa, all[9], len, c);
    __builtin_memcpy(out.sig, s, 5);
    out.pa = pa;
    out.data = all;
    out.length = len;
    out.revision = all[8];
    return Status::ok;
}

Status Tables::open(const PhysWindow& mem, uint64_t rsdp_pa, Sink& report, Why& why) {
    n_ = skipped_ = 0;
    const uint8_t* r = mem.map(rsdp_pa, kRsdpV1Size);
    if (!r) return why.set(Status::bad_acpi, "RSDP at 0x%lx: offset 0: outside the %lu MiB the tables may use", rsdp_pa, mem.size / MiB);
    if (__builtin_memcmp(r, "RSD PTR ", 8) != 0) return why.set(Status::bad_acpi, "RSDP at 0x%lx: offset 0: no \"RSD PTR \" signature", rsdp_pa);
    if (uint8_t c = sum(r, kRsdpV1Size); c != 0)
        return why.set(Status::bad_acpi, "RSDP at 0x%lx: offset 8: checksum of the first 20 bytes is 0x%02x, not 0", rsdp_pa, c);
    __builtin_memcpy(oem, r + 9, 6);
    for (char& ch : oem) if (ch && (ch < 0x20 || ch >= 0x7f)) ch = '?';
    oem[6] = 0;
    rsdp_rev_ = r[15];
    uint64_t root = le(r + 16, 4);
    xsdt_ = false;
    if (rsdp_rev_ >= 2) {
        const uint8_t* r2 = mem.map(rsdp_pa, kRsdpV2Size);
        if (!r2) return why.set(Status::bad_acpi, "RSDP at 0x%lx: offset 20: revision %u's 36 bytes run outside the window", rsdp_pa, rsdp_rev_);
        uint32_t len = static_cast<uint32_t>(le(r2 + 20, 4));
        if (len < kRsdpV2Size || len > 4096)
            return why.set(Status::bad_acpi, "RSDP at 0x%lx: offset 20: length %u (revision %u needs at least 36)", rsdp_pa, len, rsdp_rev_);
        const uint8_t* rl = mem.map(rsdp_pa, len);
        if (!rl) return why.set(Status::bad_acpi, "RSDP at 0x%lx: offset 20: length %u runs outside the window", rsdp_pa, len);
        if (uint8_t c = sum(rl, len); c != 0)
            return why.set(Status::bad_acpi, "RSDP at 0x%lx: offset 32: extended checksum over %u bytes is 0x%02x, not 0", rsdp_pa, len, c);
        if (uint64_t x = le(r2 + 24, 8)) {
            root = x;
            xsdt_ = true;
        }
    }
    if (root == 0) return why.set(Status::bad_acpi, "RSDP at 0x%lx: offset %u: no %s address", rsdp_pa, rsdp_rev_ >= 2 ? 24u : 16u, "root table");
    root_pa_ = root;
    Table rt;
    Status st = read_table(mem, root, xsdt_ ? "XSDT" : "RSDT", kHeaderSize, rt, why);
    if (st != Status::ok) return st;
    root_len_ = rt.length;
    unsigned esz = xsdt_ ? 8 : 4;
    if ((rt.length - kHeaderSize) % esz)
        return why.set(Status::bad_acpi, "%s at 0x%lx: offset 4: length %u leaves a partial %u-byte entry after the header", rt.sig, root,
                       rt.length, esz);
    unsigned entries = (rt.length - kHeaderSize) / esz;
    for (unsigned i = 0; i < entries; i++) {
        uint32_t off = kHeaderSize + i * esz;
        uint64_t pa = le(rt.data + off, esz);
        Table t;
        Why tw;
        if (n_ == kMaxTables) {
            format(report, "acpi: %s at 0x%lx: offset %u: more than %u tables; the rest are ignored\n", rt.sig, root, off, kMaxTables);
            skipped_ += entries - i;
            break;
        }
        if (read_table(mem, pa, nullptr, kHeaderSize, t, tw) != Status::ok) {
            format(report, "acpi: %s entry %u (offset %u): %s; table ignored\n", rt.sig, i, off, tw.text());
            skipped_++;
            continue;
        }
        t_[n_++] = t;
    }
    return Status::ok;
}

const Table* Tables::find(const char* sig, unsigned nth) const {
    for (unsigned i = 0; i < n_; i++)
        if (__builtin_memcmp(t_[i].sig, sig, 4) == 0 && nth-- == 0) return &t_[i];
    return nullptr;
}

Status parse_mcfg(const Table& t, McfgEntry* out, unsigned max, unsigned& count, Why& why) {
    count = 0;
    if (t.length < kMcfgEntriesOffset)
        return why.set(Status::bad_acpi, "MCFG at 0x%lx: offset 4: length %u is shorter than its %u-byte header", t.pa, t.length,
                       kMcfgEntriesOffset);
    if ((t.length - kMcfgEntriesOffset) % kMcfgEntrySize)
        return why.set(Status::bad_acpi, "MCFG at 0x%lx: offset %u: %u bytes of entries are not whole %u-byte entries", t.pa,
                       kMcfgEntriesOffset, t.length - kMcfgEntriesOffset, kMcfgEntrySize);
    for (uint32_t off = kMcfgEntriesOffset; off < t.length; off += kMcfgEntrySize) {
        const uint8_t* e = t.data + off;
        McfgEntry m{le(e, 8), static_cast<uint16_t>(le(e + 8, 2)), e[10], e[11]};
        if (m.bus_end < m.bus_start)
            return why.set(Status::bad_acpi, "MCFG at 0x%lx: offset %u: bus range %u-%u ends before it starts", t.pa, off + 10, m.bus_start,
                           m.bus_end);
        if (m.base & (MiB - 1))
            return why.set(Status::bad_acpi, "MCFG at 0x%lx: offset %u: ECAM base 0x%lx is not 1 MiB aligned", t.pa, off, m.base);
        if (add_overflows(m.base, (uint64_t{m.bus_end} + 1) << 20))
            return why.set(Status::bad_acpi, "MCFG at 0x%lx: offset %u: ECAM window of base 0x%lx up to bus %u wraps", t.pa, off, m.base,
                           m.bus_end);
        if (count == max) return why.set(Status::no_space, "MCFG at 0x%lx: offset %u: more than %u ECAM windows", t.pa, off, max);
        out[count++] = m;
    }
    return Status::ok;
}

}  // namespace moat::acpi
