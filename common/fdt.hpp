// A thin typed layer over libfdt. libfdt does the parsing; this layer knows the conventions
// moat relies on (inherited #address-cells/#size-cells, `ranges` translation, `interrupts`
// through the interrupt parent, phandle + argument lists such as `iommus`, and `iommu-map`
// translation) and turns every malformed input into a Status plus a message naming the node.
#pragma once
#include "common/format.hpp"
#include "common/status.hpp"
#include "common/why.hpp"

namespace moat::dt {

constexpr size_t kPathMax = 160;
constexpr size_t kErrorMax = Why::kMax;
constexpr unsigned kMaxCells = 16;  // arguments of one phandle reference

// Cell `i` of a property value (big-endian 32-bit words, as the flattened tree stores them).
inline uint32_t be32(const void* p, unsigned i) {
    const auto* b = static_cast<const uint8_t*>(p) + 4 * i;
    return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
}

struct Reg {
    uint64_t addr;  // CPU physical address, after `ranges` translation
    uint64_t size;
};

enum class IrqKind : uint8_t { spi, ppi, other };

struct Irq {
    IrqKind kind;
    uint32_t number;  // SPI/PPI number as in the tree
    uint32_t intid;   // GIC INTID (SPI + 32, PPI + 16); number for a non-GIC parent
    uint32_t flags;   // trigger: 1 edge rising, 2 edge falling, 4 level high, 8 level low
};

struct PhandleArgs {
    int node;         // the referenced node
    uint32_t phandle;
    unsigned count;   // number of argument cells
    uint32_t args[kMaxCells];
};

// One `iommu-map` entry: requester ids [rid_base, rid_base + length) map to stream ids
// [sid_base, ...) on the IOMMU `iommu_node`.
struct IommuMapEntry {
    uint32_t rid_base;
    uint32_t phandle;
    int iommu_node;
    uint32_t sid_base;
    uint32_t length;
};

class Tree {
public:
    // Validates the header, that the blob fits in max_size bytes, and the whole structure
    // (check_structure, then libfdt's fdt_check_full), so later reads cannot run off the blob.
    Status open(const void* blob, size_t max_size);
    const void* blob() const { return fdt_; }
    size_t size() const;

    // The last error, as "<node path>: <what>". Functions returning a Status other than ok set it.
    const char* error() const { return why_.text(); }
    const Why& why() const { return why_; }
    __attribute__((format(printf, 4, 5))) Status fail(int node, Status st, const char* fmt, ...) const;

    // Writes one line "dt: <node path>: <message>" to `out`: how tools and builders report a
    // problem with a node without stopping (fail() is for returning a Status).
    __attribute__((format(printf, 4, 5))) void report(Sink& out, int node, const char* fmt, ...) const;
    void vreport(Sink& out, int node, const char* fmt, va_list ap) const;

    // Node path into buf ("?" if libfdt cannot tell); returns buf.
    const char* path(int node, char* buf, size_t cap) const;

    int root() const { return 0; }
    int find_path(const char* path) const;  // <0 if absent
    int parent(int node) const;              // <0 for the root
    int first_subnode(int node) const;
    int next_subnode(int node) const;
    int next_node(int node, int* depth) const;  // depth-first walk, <0 at the end
    const char* name(int node) const;

    const void* prop(int node, const char* name, int* len) const;
    bool has(int node, const char* name) const;
    // A property that must be exactly one cell.
    Status u32(int node, const char* name, uint32_t& out) const;
    bool compatible(int node, const char* compat) const;
    const char* first_compatible(int node) const;  // nullptr if none
    const char* string_at(int node, const char* name, unsigned index) const;  // stringlist entry or nullptr
    bool available(int node) const;                // it and every ancestor: `status` absent, "okay" or "ok"
    bool enabled_itself(int node) const;           // its own `status` only
    uint32_t phandle(int node) const;              // 0 if none
    int node_by_phandle(uint32_t ph) const;        // <0 if none

    // #address-cells / #size-cells that apply to the children of `bus` (defaults 2 and 1).
    Status address_cells(int bus, unsigned& out) const;
    Status size_cells(int bus, unsigned& out) const;
    // Number of reg entries, and entry `index` translated to a CPU address through every
    // parent's `ranges`.
    Status reg_count(int node, unsigned& count) const;
    Status reg(int node, unsigned index, Reg& out) const;

    // Interrupts from `interrupts` via the node's interrupt parent. More than `max` is no_space.
    Status interrupts(int node, Irq* out, unsigned max, unsigned& count) const;

    // Entry `index` of a phandle + arguments list (`iommus` with `#iommu-cells`, ...).
    // Returns not_found past the end of the list.
    Status phandle_args(int node, const char* list, const char* cells_name, unsigned index, PhandleArgs& out) const;

    // `iommu-map`: entry count (checked to be whole 4-cell entries), one entry, and the
    // translation of a requester id through `iommu-map-mask` and the map.
    Status iommu_map_count(int node, unsigned& count) const;
    Status iommu_map_entry(int node, unsigned index, IommuMapEntry& out) const;
    Status iommu_map_mask(int node, uint32_t& mask) const;  // 0xffffffff when absent
    Status map_rid(int node, uint32_t rid, int& iommu_node, uint32_t& sid) const;

private:
    Status translate(int node, uint64_t& addr) const;
    Status read_cells(const uint32_t* p, unsigned cells, uint64_t& out, int node, const char* what) const;

    const void* fdt_ = nullptr;
    mutable Why why_;
};

}  // namespace moat::dt
