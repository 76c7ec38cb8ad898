#include "common/fdt.hpp"

#include <libfdt.h>

#include "common/fdt_check.hpp"

namespace moat::dt {

namespace {

uint32_t cell(const void* p, unsigned i) { return fdt32_ld(static_cast<const fdt32_t*>(p) + i); }

bool is_gic(const Tree& t, int node) {
    return t.compatible(node, "arm,gic-v3") || t.compatible(node, "arm,cortex-a15-gic") ||
           t.compatible(node, "arm,gic-400") || t.compatible(node, "arm,cortex-a9-gic");
}

}  // namespace

Status Tree::open(const void* blob, size_t max_size) {
    fdt_ = nullptr;
    if (!blob) return fail(-1, Status::bad_dt, "no device tree (null pointer)");
    if (max_size < sizeof(fdt_header)) return fail(-1, Status::bad_dt, "device tree truncated: %zu bytes", max_size);
    // Our own walk first: libfdt's full check loops or reads outside the blob on some hostile
    // trees (docs/hardware.md §7.6); after it, libfdt only sees a structure it can walk.
    if (Status st = check_structure(blob, max_size, why_); st != Status::ok) return st;
    int err = fdt_check_header(blob);
    if (err) return fail(-1, Status::bad_dt, "device tree header invalid: %s", fdt_strerror(err));
    if (fdt_totalsize(blob) > max_size)
        return fail(-1, Status::bad_dt, "device tree too large or truncated: header says %u bytes, at most %zu available",
                    fdt_totalsize(blob), max_size);
    err = fdt_check_full(blob, fdt_totalsize(blob));
    if (err) return fail(-1, Status::bad_dt, "device tree structure invalid: %s", fdt_strerror(err));
    fdt_ = blob;
    why_.clear();
    return Status::ok;
}

size_t Tree::size() const { return fdt_ ? fdt_totalsize(fdt_) : 0; }

Status Tree::fail(int node, Status st, const char* fmt, ...) const {
    va_list ap;
    va_start(ap, fmt);
    why_.vset(st, fmt, ap);
    va_end(ap);
    if (node >= 0 && fdt_) {
        char p[kPathMax + 2];
        path(node, p, kPathMax);
        format_to(p + __builtin_strlen(p), 3, ": ");
        why_.prefix(p);
    }
    return st;
}

void Tree::vreport(Sink& out, int node, const char* fmt, va_list ap) const {
    char p[kPathMax];
    format(out, "dt: %s: ", path(node, p, sizeof p));
    vformat(out, fmt, ap);
    format(out, "\n");
}

void Tree::report(Sink& out, int node, const char* fmt, ...) const {
    va_list ap;
    va_start(ap, fmt);
    vreport(out, node, fmt, ap);
    va_end(ap);
}

const char* Tree::path(int node, char* buf, size_t cap) const {
    if (!fdt_ || fdt_get_path(fdt_, node, buf, static_cast<int>(cap)) != 0) format_to(buf, cap, "?");
    return buf;
}

int Tree::find_path(const char* p) const { return fdt_path_offset(fdt_, p); }
int Tree::parent(int node) const { return node == 0 ? -1 : fdt_parent_offset(fdt_, node); }
int Tree::first_subnode(int node) const { return fdt_first_subnode(fdt_, node); }
int Tree::next_subnode(int node) const { return fdt_next_subnode(fdt_, node); }
int Tree::next_node(int node, int* depth) const { return fdt_next_node(fdt_, node, depth); }
const char* Tree::name(int node) const {
    const char* n = fdt_get_name(fdt_, node, nullptr);
    return n ? n : "?";
}

const void* Tree::prop(int node, const char* pname, int* len) const { return fdt_getprop(fdt_, node, pname, len); }
bool Tree::has(int node, const char* pname) const { return prop(node, pname, nullptr) != nullptr; }

Status Tree::u32(int node, const char* pname, uint32_t& out) const {
    int len;
    const void* p = prop(node, pname, &len);
    if (!p) return fail(node, Status::not_found, "no %s property", pname);
    if (len != 4) return fail(node, Status::bad_dt, "%s is %d bytes, expected one cell", pname, len);
    out = cell(p, 0);
    return Status::ok;
}

bool Tree::compatible(int node, const char* compat) const { return fdt_node_check_compatible(fdt_, node, compat) == 0; }

const char* Tree::first_compatible(int node) const {
    int len;
    const char* c = static_cast<const char*>(prop(node, "compatible", &len));
    return c && len > 0 && c[len - 1] == 0 ? c : nullptr;
}

const char* Tree::string_at(int node, const char* pname, unsigned index) const {
    return fdt_stringlist_get(fdt_, node, pname, static_cast<int>(index), nullptr);
}

bool Tree::enabled_itself(int node) const {
    int len;
    const char* s = static_cast<const char*>(prop(node, "status", &len));
    if (!s) return true;
    return len > 0 && s[len - 1] == 0 && (__builtin_strcmp(s, "okay") == 0 || __builtin_strcmp(s, "ok") == 0);
}

// As Linux's of_device_is_available() is used by the platform bus: a disabled bus takes its
// children with it (ZCU102's usb@ff9e0000 holds a dwc3 with no `status` of its own).
bool Tree::available(int node) const {
    if (node < 0) return false;
    for (int n = node; n >= 0; n = parent(n))
        if (!enabled_itself(n)) return false;
    return true;
}

uint32_t Tree::phandle(int node) const { return fdt_get_phandle(fdt_, node); }

int Tree::node_by_phandle(uint32_t ph) const {
    if (ph == 0 || ph == 0xffffffffu) return -FDT_ERR_BADPHANDLE;
    return fdt_node_offset_by_phandle(fdt_, ph);
}

Status Tree::address_cells(int bus, unsigned& out) const {
    uint32_t v = 2;
    Status st = u32(bus, "#address-cells", v);
    if (st == Status::not_found) v = 2;
    else if (st != Status::ok) return st;
    if (v < 1 || v > 4) return fail(bus, Status::bad_dt, "#address-cells is %u, expected 1..4", v);
    out = v;
    return Status::ok;
}

Status Tree::size_cells(int bus, unsigned& out) const {
    uint32_t v = 1;
    Status st = u32(bus, "#size-cells", v);
    if (st == Status::not_found) v = 1;
    else if (st != Status::ok) return st;
    if (v > 4) return fail(bus, Status::bad_dt, "#size-cells is %u, expected 0..4", v);
    out = v;
    return Status::ok;
}

Status Tree::read_cells(const uint32_t* p, unsigned cells, uint64_t& out, int node, const char* what) const {
    uint64_t v = 0;
    for (unsigned i = 0; i < cells; i++) {
        if (i + 2 < cells && cell(p, i) != 0)
            return fail(node, Status::out_of_range, "%s does not fit in 64 bits", what);
        v = (v << 32) | cell(p, i);
    }
    out = v;
    return Status::ok;
}

Status Tree::reg_count(int node, unsigned& count) const {
    int bus = parent(node);
    if (bus < 0) return fail(node, Status::bad_dt, "the root has no reg");
    unsigned ac, sc;
    Status st = address_cells(bus, ac);
    if (st == Status::ok) st = size_cells(bus, sc);
    if (st != Status::ok) return st;
    int len;
    const void* p = prop(node, "reg", &len);
    if (!p) return fail(node, Status::not_found, "no reg property");
    unsigned entry = (ac + sc) * 4;
    if (len <= 0 || static_cast<unsigned>(len) % entry)
        return fail(node, Status::bad_dt, "reg is %d bytes, not a multiple of %u (#address-cells %u + #size-cells %u)",
                    len, entry, ac, sc);
    count = static_cast<unsigned>(len) / entry;
    return Status::ok;
}

Status Tree::reg(int node, unsigned index, Reg& out) const {
    unsigned count;
    Status st = reg_count(node, count);
    if (st != Status::ok) return st;
    if (index >= count) return fail(node, Status::not_found, "reg has %u entries, no entry %u", count, index);
    unsigned ac, sc;
    int bus = parent(node);
    (void)address_cells(bus, ac);
    (void)size_cells(bus, sc);
    const auto* p = static_cast<const uint32_t*>(prop(node, "reg", nullptr)) + index * (ac + sc);
    if ((st = read_cells(p, ac, out.addr, node, "reg address")) != Status::ok) return st;
    if ((st = read_cells(p + ac, sc, out.size, node, "reg size")) != Status::ok) return st;
    return translate(node, out.addr);
}

// Walks up from `node`'s bus through each ancestor's `ranges` until the root's address space.
Status Tree::translate(int node, uint64_t& addr) const {
    int bus = parent(node);
    while (bus > 0) {
        int up = parent(bus);
        int len;
        const void* r = prop(bus, "ranges", &len);
        if (!r) return fail(node, Status::bad_dt, "reg is not CPU-addressable: %s has no ranges", name(bus));
        if (len > 0) {
            unsigned cac, csc, pac;
            Status st = address_cells(bus, cac);
            if (st == Status::ok) st = size_cells(bus, csc);
            if (st == Status::ok) st = address_cells(up, pac);
            if (st != Status::ok) return st;
            unsigned entry = cac + pac + csc;
            if (static_cast<unsigned>(len) % (entry * 4))
                return fail(bus, Status::bad_dt, "ranges is %d bytes, not a multiple of %u cells", len, entry);
            bool found = false;
            for (unsigned i = 0; i < static_cast<unsigned>(len) / (entry * 4) && !found; i++) {
                const auto* e = static_cast<const uint32_t*>(r) + i * entry;
                uint64_t child, par, size;
                if ((st = read_cells(e, cac, child, bus, "ranges child address")) != Status::ok) return st;
                if ((st = read_cells(e + cac, pac, par, bus, "ranges parent address")) != Status::ok) return st;
                if ((st = read_cells(e + cac + pac, csc, size, bus, "ranges size")) != Status::ok) return st;
                if (addr >= child && addr - child < size) {
                    addr = addr - child + par;
                    found = true;
                }
            }
            if (!found) return fail(node, Status::bad_dt, "address 0x%lx is outside the ranges of %s", addr, name(bus));
        }
        bus = up;
    }
    return Status::ok;
}

Status Tree::interrupts(int node, Irq* out, unsigned max, unsigned& count) const {
    count = 0;
    int len;
    const void* p = prop(node, "interrupts", &len);
    if (!p) return Status::ok;
    int ctl = -1;
    for (int n = node; n >= 0 && ctl < 0; n = parent(n)) {
        int plen;
        const void* ip = prop(n, "interrupt-parent", &plen);
        if (!ip) continue;
        if (plen != 4) return fail(n, Status::bad_dt, "interrupt-parent is %d bytes, expected one cell", plen);
        ctl = node_by_phandle(cell(ip, 0));
        if (ctl < 0) return fail(n, Status::bad_dt, "interrupt-parent phandle 0x%x points nowhere", cell(ip, 0));
    }
    if (ctl < 0) return fail(node, Status::bad_dt, "interrupts without an interrupt parent");
    uint32_t cells;
    Status st = u32(ctl, "#interrupt-cells", cells);
    if (st != Status::ok) return st == Status::not_found ? fail(ctl, Status::bad_dt, "interrupt controller without #interrupt-cells") : st;
    if (cells == 0 || cells > kMaxCells) return fail(ctl, Status::bad_dt, "#interrupt-cells is %u", cells);
    if (len <= 0 || static_cast<unsigned>(len) % (cells * 4))
        return fail(node, Status::bad_dt, "interrupts is %d bytes, not a multiple of #interrupt-cells (%u)", len, cells);
    bool gic = is_gic(*this, ctl) && cells >= 3;
    unsigned n = static_cast<unsigned>(len) / (cells * 4);
    if (n > max) return fail(node, Status::no_space, "%u interrupts; at most %u are read", n, max);
    for (unsigned i = 0; i < n; i++) {
        Irq& irq = out[count++];
        if (gic) {
            uint32_t type = cell(p, i * cells), num = cell(p, i * cells + 1);
            irq.kind = type == 0 ? IrqKind::spi : type == 1 ? IrqKind::ppi : IrqKind::other;
            irq.number = num;
            irq.intid = type == 0 ? num + 32 : type == 1 ? num + 16 : num;
            irq.flags = cell(p, i * cells + 2) & 0xf;
        } else {
            irq = Irq{IrqKind::other, cell(p, i * cells), cell(p, i * cells), cells > 1 ? cell(p, i * cells + 1) : 0};
        }
    }
    return Status::ok;
}

Status Tree::phandle_args(int node, const char* list, const char* cells_name, unsigned index, PhandleArgs& out) const {
    int len;
    const void* p = prop(node, list, &len);
    if (!p) return fail(node, Status::not_found, "no %s property", list);
    if (len % 4) return fail(node, Status::bad_dt, "%s is %d bytes, not whole cells", list, len);
    unsigned total = static_cast<unsigned>(len) / 4, pos = 0;
    for (unsigned i = 0; pos < total; i++) {
        uint32_t ph = cell(p, pos);
        int target = node_by_phandle(ph);
        if (target < 0) return fail(node, Status::bad_dt, "%s entry %u: phandle 0x%x points to no node", list, i, ph);
        uint32_t n;
        Status st = u32(target, cells_name, n);
        if (st == Status::not_found) {
            char tp[kPathMax];
            return fail(node, Status::bad_dt, "%s entry %u: %s has no %s", list, i, path(target, tp, sizeof tp), cells_name);
        }
        if (st != Status::ok) return st;
        if (n > kMaxCells) return fail(target, Status::bad_dt, "%s is %u, more than %u", cells_name, n, kMaxCells);
        if (pos + 1 + n > total)
            return fail(node, Status::bad_dt, "%s entry %u: %s wants %u cells, only %u left", list, i, cells_name, n,
                        total - pos - 1);
        if (i == index) {
            out.node = target;
            out.phandle = ph;
            out.count = n;
            for (unsigned k = 0; k < n; k++) out.args[k] = cell(p, pos + 1 + k);
            return Status::ok;
        }
        pos += 1 + n;
    }
    why_.clear();
    return Status::not_found;
}

Status Tree::iommu_map_count(int node, unsigned& count) const {
    int len;
    const void* p = prop(node, "iommu-map", &len);
    if (!p) return fail(node, Status::not_found, "no iommu-map property");
    if (len <= 0 || len % 16)
        return fail(node, Status::bad_dt, "iommu-map is %d bytes, not a multiple of 4 cells (rid-base, phandle, sid-base, length)", len);
    count = static_cast<unsigned>(len) / 16;
    return Status::ok;
}

Status Tree::iommu_map_entry(int node, unsigned index, IommuMapEntry& out) const {
    unsigned count;
    Status st = iommu_map_count(node, count);
    if (st != Status::ok) return st;
    if (index >= count) return fail(node, Status::not_found, "iommu-map has no entry %u", index);
    const void* p = prop(node, "iommu-map", nullptr);
    out.rid_base = cell(p, index * 4);
    out.phandle = cell(p, index * 4 + 1);
    out.sid_base = cell(p, index * 4 + 2);
    out.length = cell(p, index * 4 + 3);
    out.iommu_node = node_by_phandle(out.phandle);
    if (out.iommu_node < 0)
        return fail(node, Status::bad_dt, "iommu-map entry %u: phandle 0x%x points to no node", index, out.phandle);
    uint32_t cells;
    st = u32(out.iommu_node, "#iommu-cells", cells);
    char tp[kPathMax];
    if (st == Status::not_found)
        return fail(node, Status::bad_dt, "iommu-map entry %u: %s has no #iommu-cells", index, path(out.iommu_node, tp, sizeof tp));
    if (st != Status::ok) return st;
    if (cells != 1)
        return fail(node, Status::bad_dt, "iommu-map entry %u: %s has #iommu-cells = %u, iommu-map needs 1", index,
                    path(out.iommu_node, tp, sizeof tp), cells);
    if (out.length == 0) return fail(node, Status::bad_dt, "iommu-map entry %u has length 0", index);
    if (uint64_t{out.rid_base} + out.length > (1ull << 32) || uint64_t{out.sid_base} + out.length > (1ull << 32))
        return fail(node, Status::bad_dt, "iommu-map entry %u: range wraps past 2^32", index);
    return Status::ok;
}

Status Tree::iommu_map_mask(int node, uint32_t& mask) const {
    mask = 0xffffffffu;
    Status st = u32(node, "iommu-map-mask", mask);
    return st == Status::not_found ? Status::ok : st;
}

Status Tree::map_rid(int node, uint32_t rid, int& iommu_node, uint32_t& sid) const {
    uint32_t mask;
    unsigned count;
    Status st = iommu_map_mask(node, mask);
    if (st == Status::ok) st = iommu_map_count(node, count);
    if (st != Status::ok) return st;
    uint32_t masked = rid & mask;
    for (unsigned i = 0; i < count; i++) {
        IommuMapEntry e;
        if ((st = iommu_map_entry(node, i, e)) != Status::ok) return st;
        if (masked >= e.rid_base && masked - e.rid_base < e.length) {
            iommu_node = e.iommu_node;
            sid = e.sid_base + (masked - e.rid_base);
            return Status::ok;
        }
    }
    return fail(node, Status::not_found, "requester id 0x%x (masked 0x%x) is not in iommu-map", rid, masked);
}

}  // namespace moat::dt
