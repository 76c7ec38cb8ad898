#include "common/boot_memory.hpp"

#include <libfdt.h>

namespace moat {

uint64_t MemoryPlan::ram_bytes() const {
    uint64_t n = 0;
    for (unsigned i = 0; i < nram; i++) n += ram[i].size;
    return n;
}

uint64_t MemoryPlan::free_bytes() const {
    uint64_t n = 0;
    for (unsigned i = 0; i < nfree; i++) n += free[i].size;
    return n;
}

namespace {

Status reserve(const dt::Tree& t, MemoryPlan& p, MemRange r, const char* why) {
    if (r.size == 0) return Status::ok;
    if (p.nreserved == MemoryPlan::kMaxReserved)
        return t.fail(-1, Status::no_space, "more than %u reserved ranges", MemoryPlan::kMaxReserved);
    if (add_overflows(r.base, r.size)) return t.fail(-1, Status::bad_dt, "reserved range 0x%lx+0x%lx wraps", r.base, r.size);
    p.reserved_why[p.nreserved] = why;
    p.reserved[p.nreserved++] = r;
    return Status::ok;
}

// Removes [cut) from every free range, splitting where needed.
Status subtract(const dt::Tree& t, MemoryPlan& p, MemRange cut) {
    for (unsigned i = 0; i < p.nfree; i++) {
        MemRange f = p.free[i];
        if (cut.end() <= f.base || f.end() <= cut.base) continue;
        MemRange lo{f.base, cut.base > f.base ? cut.base - f.base : 0};
        MemRange hi{cut.end(), f.end() > cut.end() ? f.end() - cut.end() : 0};
        if (lo.size && hi.size) {
            if (p.nfree == MemoryPlan::kMaxFree) return t.fail(-1, Status::no_space, "memory too fragmented");
            p.free[i] = lo;
            p.free[p.nfree++] = hi;
        } else if (lo.size || hi.size) {
            p.free[i] = lo.size ? lo : hi;
        } else {
            p.free[i--] = p.free[--p.nfree];
        }
    }
    return Status::ok;
}

}  // namespace

Status plan_memory(const dt::Tree& t, MemRange image, MemRange dtb, MemoryPlan& p) {
    p = MemoryPlan{};
    Status st;
    // Every /memory node (device_type = "memory"), each with any number of reg entries.
    for (int n = t.first_subnode(0); n >= 0; n = t.next_subnode(n)) {
        int len;
        const char* dtype = static_cast<const char*>(t.prop(n, "device_type", &len));
        if (!dtype || len != 7 || __builtin_memcmp(dtype, "memory", 7) != 0 || !t.available(n)) continue;
        unsigned count;
        if ((st = t.reg_count(n, count)) != Status::ok) return st;
        for (unsigned i = 0; i < count; i++) {
            dt::Reg r;
            if ((st = t.reg(n, i, r)) != Status::ok) return st;
            if (r.size == 0) continue;
            if (add_overflows(r.addr, r.size)) return t.fail(n, Status::bad_dt, "reg entry %u wraps", i);
            if (p.nram == MemoryPlan::kMaxRam) return t.fail(n, Status::no_space, "more than %u RAM ranges", MemoryPlan::kMaxRam);
            p.ram[p.nram++] = MemRange{r.addr, r.size};
        }
    }
    if (p.nram == 0) return t.fail(0, Status::bad_dt, "no /memory node with RAM");

    if ((st = reserve(t, p, image, "moat image")) != Status::ok) return st;
    if ((st = reserve(t, p, dtb, "device tree")) != Status::ok) return st;
    int nrsv = fdt_num_mem_rsv(t.blob());
    for (int i = 0; i < nrsv; i++) {
        uint64_t a, s;
        if (fdt_get_mem_rsv(t.blob(), i, &a, &s) == 0 && (st = reserve(t, p, {a, s}, "/memreserve/")) != Status::ok) return st;
    }
    int rm = t.find_path("/reserved-memory");
    if (rm >= 0) {
        for (int n = t.first_subnode(rm); n >= 0; n = t.next_subnode(n)) {
            unsigned count;
            if (!t.has(n, "reg")) continue;  // dynamically placed pools have no reg: nothing to cut
            if ((st = t.reg_count(n, count)) != Status::ok) return st;
            for (unsigned i = 0; i < count; i++) {
                dt::Reg r;
                if ((st = t.reg(n, i, r)) != Status::ok) return st;
                if ((st = reserve(t, p, {r.addr, r.size}, "/reserved-memory")) != Status::ok) return st;
            }
        }
    }

    for (unsigned i = 0; i < p.nram; i++) p.free[p.nfree++] = p.ram[i];
    for (unsigned i = 0; i < p.nreserved; i++) {
        MemRange r{align_down(p.reserved[i].base, kPageSize), 0};
        r.size = align_up(p.reserved[i].end(), kPageSize) - r.base;
        if ((st = subtract(t, p, r)) != Status::ok) return st;
    }
    return Status::ok;
}

Status reserve_range(const dt::Tree& t, MemoryPlan& p, MemRange r, const char* why) {
    Status st = reserve(t, p, r, why);
    if (st != Status::ok) return st;
    MemRange page{align_down(r.base, kPageSize), 0};
    page.size = align_up(r.end(), kPageSize) - page.base;
    return subtract(t, p, page);
}

Status fill_pool(const MemoryPlan& plan, PagePool& pool) {
    for (unsigned i = 0; i < plan.nfree; i++) {
        Status st = pool.add_region(plan.free[i].base, plan.free[i].size);
        if (st != Status::ok) return st;
    }
    return Status::ok;
}

void print_memory(const MemoryPlan& p, const PagePool& pool, Sink& out) {
    for (unsigned i = 0; i < p.nram; i++)
        format(out, "ram:      0x%010lx-0x%010lx (%lu MiB)\n", p.ram[i].base, p.ram[i].end() - 1, p.ram[i].size / MiB);
    for (unsigned i = 0; i < p.nreserved; i++)
        format(out, "reserved: 0x%010lx-0x%010lx %s\n", p.reserved[i].base, p.reserved[i].end() - 1, p.reserved_why[i]);
    format(out, "pool:     %zu pages (%lu MiB) in %zu ranges, %zu in use\n", pool.total_pages(),
           uint64_t{pool.total_pages()} * kPageSize / MiB, pool.region_count(), pool.used_pages());
}

}  // namespace moat
