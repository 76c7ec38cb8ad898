// The ACPI tables moat reads on x86 (q35): the RSDP the loader hands over (PVH start info), the
// XSDT (or, on ACPI 1.0 firmware, the RSDT) it points at, and the tables listed there; MCFG for
// the ECAM windows PCI enumeration uses. DMAR is read by its own parser over the same Table.
//
// Read defensively, because firmware tables are input like a device tree: every address is
// checked to lie inside the physical window the caller gives (and the whole table with it),
// every length against the structure it must hold, every checksum; a bad table is refused with
// one line naming its signature, its address and the byte offset at fault, and the tables that
// are good stay usable.
//
// Why our own reader: ACPICA (the reference implementation, used by Linux, FreeBSD, Xen) is a
// full AML interpreter of >100k lines that needs an OS services layer; moat needs three static
// tables and no AML. No small freestanding table reader is packaged in Debian. This file is
// the whole of it: a few hundred lines, tested on the host with every bad case.
#pragma once
#include "common/format.hpp"
#include "common/status.hpp"
#include "common/why.hpp"

namespace moat::acpi {

// Physical memory the reader may look at: [base, base + size), reached at host address `host`
// (on the image the identity map: host == base; in host tests, a buffer).
struct PhysWindow {
    uint64_t base = 0;
    uint64_t size = 0;
    uintptr_t host = 0;
    // A pointer to [pa, pa + len) if that range lies wholly inside the window; nullptr otherwise.
    const uint8_t* map(uint64_t pa, uint64_t len) const;
};

// Every table header: 36 bytes.
constexpr uint32_t kHeaderSize = 36;
constexpr uint32_t kMaxTableSize = 1u << 20;  // larger than any static table firmware builds
constexpr unsigned kMaxTables = 32;

struct Table {
    char sig[5];          // NUL-terminated signature ("MCFG")
    uint64_t pa;
    const uint8_t* data;  // the whole table, length bytes, checksum verified
    uint32_t length;
    uint8_t revision;
};

// Little-endian fields at a byte offset (ACPI is little-endian whatever the CPU).
inline uint64_t le(const uint8_t* p, unsigned bytes) {
    uint64_t v = 0;
    for (unsigned i = bytes; i-- > 0;) v = v << 8 | p[i];
    return v;
}

class Tables {
public:
    // Reads the RSDP at rsdp_pa and the root table it names (XSDT when the RSDP is revision 2 or
    // later and gives one, else the RSDT), then each table listed. A root or RSDP that is bad is
    // bad_acpi with `why` set, and nothing is usable; a listed table that is bad is skipped,
    // reported as one line on `report`, and counted in skipped().
    Status open(const PhysWindow& mem, uint64_t rsdp_pa, Sink& report, Why& why);

    const Table* find(const char* sig, unsigned nth = 0) const;
    unsigned count() const { return n_; }
    const Table& at(unsigned i) const { return t_[i]; }
    unsigned skipped() const { return skipped_; }
    uint8_t rsdp_revision() const { return rsdp_rev_; }
    const char* root_name() const { return xsdt_ ? "XSDT" : "RSDT"; }
    uint64_t root_pa() const { return root_pa_; }
    uint32_t root_length() const { return root_len_; }
    char oem[7] = {};  // the RSDP's OEM id

private:
    Table t_[kMaxTables];
    unsigned n_ = 0, skipped_ = 0;
    uint8_t rsdp_rev_ = 0;
    bool xsdt_ = false;
    uint64_t root_pa_ = 0;
    uint32_t root_len_ = 0;
};

// Checks the table at `pa` whole (header inside the window, length at least the header and
// `min_length`, at most kMaxTableSize, the body inside the window, checksum) and, if `sig` is
// given, its signature. bad_acpi with `why` "<SIG> at 0x<pa>: offset <n>: <what>".
Status read_table(const PhysWindow& mem, uint64_t pa, const char* sig, uint32_t min_length, Table& out, Why& why);

// MCFG: one entry per PCI segment group's ECAM window.
struct McfgEntry {
    uint64_t base;       // the ECAM address bus 0 would have (the spec's, as Linux reads it)
    uint16_t segment;
    uint8_t bus_start, bus_end;
    // The window that holds buses bus_start..bus_end: 1 MiB per bus.
    uint64_t window() const { return base + (uint64_t{bus_start} << 20); }
    uint64_t size() const { return (uint64_t{bus_end} - bus_start + 1) << 20; }
};
constexpr unsigned kMaxMcfg = 8;
constexpr uint32_t kMcfgEntriesOffset = 44;  // header + 8 reserved bytes
constexpr uint32_t kMcfgEntrySize = 16;

// Every entry of `t` (an MCFG). bad_acpi naming the offset when the entries are not whole, a bus
// range is reversed, a base is not 1 MiB aligned or the window wraps; no_space past `max`.
Status parse_mcfg(const Table& t, McfgEntry* out, unsigned max, unsigned& count, Why& why);

}  // namespace moat::acpi
