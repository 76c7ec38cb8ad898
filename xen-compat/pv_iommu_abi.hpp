// The Xen PV-IOMMU hypercall ABI (Teddy Astie's proposal, v5 numbering; docs/hardware.md §5) as data.
// Every struct is the ABI: sizes and offsets are static_asserted, padding is explicit.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace moat::xen {

constexpr uint64_t kHypercallIommuOp = 43;   // __HYPERVISOR_iommu_op
constexpr uint16_t kHvcXen = 0xEA1;          // hvc #0xEA1, number in x16, arguments in x0..x4
constexpr uint64_t kHypercallMoatExit = 0x4d4f4154;  // moat's own: end the test guest, x0 = status

enum class IommuSubop : uint32_t {
    noop = 0,
    query_capabilities = 1,
    init = 2,
    alloc_context = 3,
    free_context = 4,
    reattach_device = 5,
    map_pages = 6,
    unmap_pages = 7,
    remote_cmd = 8,
    alloc_nested = 9,
    flush_nested = 10,
    attach_pasid = 11,
    detach_pasid = 12,
};

namespace cap {
constexpr uint32_t kDefaultIdentity = 1u << 0;
constexpr uint32_t kCache = 1u << 1;
constexpr uint32_t kNested = 1u << 2;
constexpr uint32_t kPasid = 1u << 3;
constexpr uint32_t kIdentity = 1u << 4;
}  // namespace cap
namespace mapf {
constexpr uint32_t kReadable = 1u << 0;
constexpr uint32_t kWriteable = 1u << 1;
constexpr uint32_t kCache = 1u << 2;
constexpr uint32_t kAll = kReadable | kWriteable | kCache;
}  // namespace mapf
constexpr uint32_t kAllocIdentity = 1u << 0;
constexpr uint32_t kFreeReattachDefault = 1u << 0;

struct PvIommuCapabilities {
    uint64_t max_iova_addr;  // out: highest usable DMA address
    uint32_t cap_flags;      // out
    uint32_t pgsize_mask;    // out: page sizes map/unmap accept
    uint32_t max_pasid;      // out
    uint16_t max_ctx_no;     // out
    uint8_t pad0[2];
};
static_assert(sizeof(PvIommuCapabilities) == 24);
static_assert(offsetof(PvIommuCapabilities, cap_flags) == 8 && offsetof(PvIommuCapabilities, max_ctx_no) == 20);

struct PvIommuInit {
    uint32_t max_ctx_no;
    uint32_t arena_order;
};
static_assert(sizeof(PvIommuInit) == 8);

struct PvIommuAllocContext {
    uint16_t ctx_no;  // out
    uint8_t pad0[2];
    uint32_t alloc_flags;
};
static_assert(sizeof(PvIommuAllocContext) == 8 && offsetof(PvIommuAllocContext, alloc_flags) == 4);

struct PvIommuFreeContext {
    uint16_t ctx_no;
    uint8_t pad0[2];
    uint32_t free_flags;
};
static_assert(sizeof(PvIommuFreeContext) == 8 && offsetof(PvIommuFreeContext, free_flags) == 4);

struct PvIommuReattachDevice {
    uint16_t ctx_no;
    uint16_t seg;   // PCI segment
    uint8_t bus;
    uint8_t devfn;
    uint8_t pad0[2];
    uint32_t pasid;
    uint8_t pad1[4];
};
static_assert(sizeof(PvIommuReattachDevice) == 16 && offsetof(PvIommuReattachDevice, bus) == 4 &&
              offsetof(PvIommuReattachDevice, pasid) == 8);

struct PvIommuMapPages {
    uint16_t ctx_no;
    uint8_t pad0[6];
    uint64_t gfn;       // in/out: advances as pages are mapped
    uint64_t dfn;       // in/out
    uint32_t map_flags;
    uint8_t pad1[4];
    uint64_t pgsize;
    uint64_t nr_pages;  // in/out: pages still to map
    uint64_t mapped;    // out: incremented by the pages this call mapped (also on error)
};
static_assert(sizeof(PvIommuMapPages) == 56 && offsetof(PvIommuMapPages, gfn) == 8 && offsetof(PvIommuMapPages, dfn) == 16 &&
              offsetof(PvIommuMapPages, map_flags) == 24 && offsetof(PvIommuMapPages, pgsize) == 32 &&
              offsetof(PvIommuMapPages, nr_pages) == 40 && offsetof(PvIommuMapPages, mapped) == 48);

struct PvIommuUnmapPages {
    uint16_t ctx_no;
    uint8_t pad0[6];
    uint64_t dfn;       // in/out
    uint64_t pgsize;
    uint64_t nr_pages;  // in/out
    uint64_t unmapped;  // out: incremented (also on error)
};
static_assert(sizeof(PvIommuUnmapPages) == 40 && offsetof(PvIommuUnmapPages, dfn) == 8 &&
              offsetof(PvIommuUnmapPages, nr_pages) == 24 && offsetof(PvIommuUnmapPages, unmapped) == 32);

struct PvIommuRemoteCmd {
    uint16_t domid;
    uint16_t subop;
    uint8_t pad0[4];
    uint64_t arg;  // guest pointer to the sub-op's struct, in the caller's memory
};
static_assert(sizeof(PvIommuRemoteCmd) == 16 && offsetof(PvIommuRemoteCmd, arg) == 8);

}  // namespace moat::xen
