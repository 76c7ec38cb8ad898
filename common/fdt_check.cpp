#include "common/fdt_check.hpp"

namespace moat::dt {

namespace {

// Header fields and tokens of the flattened format (docs/hardware.md §7.6).
constexpr uint32_t kMagic = 0xd00dfeed;
constexpr size_t kHeaderV16 = 36;  // version 17 adds size_dt_struct at offset 36
constexpr size_t kHeaderV17 = 40;
enum Token : uint32_t { begin_node = 1, end_node = 2, prop = 3, nop = 4, end = 9 };

uint32_t word(const uint8_t* p) { return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3]; }
uint64_t dword(const uint8_t* p) { return uint64_t{word(p)} << 32 | word(p + 4); }
size_t align4(size_t v) { return (v + 3) & ~size_t{3}; }

// Length of the NUL-terminated string at p, looking at most `room` bytes; room when unterminated.
size_t bounded_strlen(const uint8_t* p, size_t room) {
    size_t n = 0;
    while (n < room && p[n] != 0) n++;
    return n;
}

// [a, a + alen) and [b, b + blen) share a byte (both inside the blob already).
bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) { return alen && blen && a < b + blen && b < a + alen; }

// [off, off + len) inside [0, total), without overflow.
bool inside(uint64_t off, uint64_t len, uint64_t total) { return off <= total && len <= total - off; }

}  // namespace

Status check_structure(const void* blob, size_t size, Why& why) {
    const auto* b = static_cast<const uint8_t*>(blob);
    if (!b) return why.set(Status::bad_dt, "no device tree (null pointer)");
    if (size < kHeaderV16) return why.set(Status::bad_dt, "device tree truncated: %zu bytes", size);
    if (word(b) != kMagic) return why.set(Status::bad_dt, "device tree header invalid: magic 0x%08x", word(b));
    const uint32_t total = word(b + 4), off_struct = word(b + 8), off_strings = word(b + 12),
                   off_rsv = word(b + 16), version = word(b + 20), last_comp = word(b + 24),
                   size_strings = word(b + 32);
    if (total > size)
        return why.set(Status::bad_dt, "device tree too large or truncated: header says %u bytes, at most %zu available",
                       total, size);
    if (version < kOldestVersion || last_comp > kNewestCompatible || last_comp > version)
        return why.set(Status::bad_dt, "device tree version %u (compatible with %u) unsupported: moat reads %u..%u",
                       version, last_comp, kOldestVersion, kNewestCompatible);
    const size_t header = version >= 17 ? kHeaderV17 : kHeaderV16;
    if (total < header) return why.set(Status::bad_dt, "device tree truncated: header says %u bytes", total);
    // Version 16 has no struct size: the block runs to the strings block or to the end.
    uint64_t size_struct = version >= 17 ? word(b + 36)
                           : off_strings > off_struct ? off_strings - off_struct
                                                      : uint64_t{total} - off_struct;
    if (off_struct < header || off_struct % 4 || size_struct % 4 || !inside(off_struct, size_struct, total))
        return why.set(Status::bad_dt, "device tree structure block 0x%x+0x%llx outside the %u-byte blob or misaligned",
                       off_struct, static_cast<unsigned long long>(size_struct), total);
    if (off_strings < header || !inside(off_strings, size_strings, total))
        return why.set(Status::bad_dt, "device tree strings block 0x%x+0x%x outside the %u-byte blob", off_strings,
                       size_strings, total);
    // The blocks must not overlap: libfdt sizes and moves each by its own rules.
    if (overlap(off_struct, size_struct, off_strings, size_strings))
        return why.set(Status::bad_dt, "device tree structure and strings blocks overlap");
    if (off_rsv < header || off_rsv % 8) return why.set(Status::bad_dt, "device tree reserve map at 0x%x misplaced", off_rsv);
    // The reserve map ends at its (0, 0) entry, before the next block starts.
    uint64_t rsv_end = total;
    if (off_struct >= off_rsv && off_struct < rsv_end) rsv_end = off_struct;
    if (off_strings >= off_rsv && off_strings < rsv_end && size_strings) rsv_end = off_strings;
    for (uint64_t at = off_rsv;; at += 16) {
        if (!inside(at, 16, rsv_end)) return why.set(Status::bad_dt, "device tree reserve map not terminated before the next block");
        if (dword(b + at + 8) == 0) {
            // The format ends the map at (0, 0); libfdt ends it at the first size 0. Both must agree.
            if (dword(b + at) == 0) break;
            return why.set(Status::bad_dt, "device tree reserve map entry at 0x%llx has size 0", static_cast<unsigned long long>(at));
        }
    }

    const uint8_t* s = b + off_struct;
    const uint8_t* strings = b + off_strings;
    size_t pos = 0;
    unsigned depth = 0;
    bool root_done = false;
    for (;;) {
        if (size_struct - pos < 4) return why.set(Status::bad_dt, "device tree structure invalid: no FDT_END");
        const uint32_t tok = word(s + pos);
        const size_t at = pos;
        pos += 4;
        switch (tok) {
        case begin_node: {
            if (root_done) return why.set(Status::bad_dt, "device tree structure invalid: a second root node at structure offset 0x%zx", at);
            const size_t n = bounded_strlen(s + pos, size_struct - pos);
            if (n == size_struct - pos)
                return why.set(Status::bad_dt, "device tree structure invalid: node name at structure offset 0x%zx not terminated", at);
            if (depth == 0 && n != 0)
                return why.set(Status::bad_dt, "device tree structure invalid: root node has a %zu-byte name, must be empty", n);
            if (depth != 0 && n == 0)
                return why.set(Status::bad_dt, "device tree structure invalid: node at structure offset 0x%zx has no name", at);
            pos = align4(pos + n + 1);
            if (pos > size_struct) return why.set(Status::bad_dt, "device tree structure invalid: node name at 0x%zx runs off the block", at);
            depth++;
            break;
        }
        case end_node:
            if (depth == 0) return why.set(Status::bad_dt, "device tree structure invalid: FDT_END_NODE without a node at structure offset 0x%zx", at);
            if (--depth == 0) root_done = true;
            break;
        case prop: {
            if (depth == 0) return why.set(Status::bad_dt, "device tree structure invalid: property outside any node at structure offset 0x%zx", at);
            if (size_struct - pos < 8) return why.set(Status::bad_dt, "device tree structure invalid: property at 0x%zx truncated", at);
            const uint32_t len = word(s + pos), nameoff = word(s + pos + 4);
            pos += 8;
            if (len > size_struct - pos)
                return why.set(Status::bad_dt,
                               "device tree structure invalid: property at structure offset 0x%zx has length 0x%x, past the end of the structure block",
                               at, len);
            if (nameoff >= size_strings || bounded_strlen(strings + nameoff, size_strings - nameoff) == size_strings - nameoff)
                return why.set(Status::bad_dt, "device tree structure invalid: property at structure offset 0x%zx: name offset 0x%x outside the strings block",
                               at, nameoff);
            pos = align4(pos + len);
            if (pos > size_struct) return why.set(Status::bad_dt, "device tree structure invalid: property at 0x%zx runs off the block", at);
            break;
        }
        case nop:
            break;
        case end:
            if (!root_done || depth != 0)
                return why.set(Status::bad_dt, "device tree structure invalid: FDT_END at structure offset 0x%zx inside a node or before the root", at);
            return Status::ok;
        default:
            return why.set(Status::bad_dt, "device tree structure invalid: token 0x%x at structure offset 0x%zx unknown", tok, at);
        }
    }
}

}  // namespace moat::dt
