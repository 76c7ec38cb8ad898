// A page table over the recording memory, with helpers that run one operation and flush it the
// way a driver would (invalidate, then release the gathered pages).
#pragma once
#include "tests/unit/iopt_support.hpp"

namespace iopt_test {

template <class F>
struct Rig {
    HostPool host;
    RecordingMemory mem;
    PageTable<F, RecordingMemory> pt;
    size_t used_before_init = 0;
    size_t base = 0;  // used pages with only the root

    explicit Rig(unsigned ias, bool coherent = true, unsigned oas = 40, size_t pool_pages = 2048)
        : host(pool_pages), mem(*host.pool, coherent), pt(mem, ias, oas) {
        used_before_init = pool().used_pages();
        EXPECT_EQ(pt.init(), Status::ok);
        mem.set_root(pt.root_pa(), pt.geometry().root_tables, pt.geometry().start_level);
        base = pool().used_pages();
    }
    ~Rig() {
        EXPECT_TRUE(mem.violations.empty()) << mem.violations.front();
        pt.destroy();
        EXPECT_EQ(pool().used_pages(), used_before_init);
    }

    PagePool& pool() { return *host.pool; }
    // Table pages in use below the root; cached() more are held empty for reuse.
    size_t tables() { return pool().used_pages() - base - cached(); }
    size_t parked() { return pt.parked_tables(); }
    size_t cached() { return pt.cached_tables(); }
    // Tables a walk needs between the root and a level-2 table (a level-1 table if the root is level 0).
    size_t upper() { return pt.geometry().start_level == 0 ? 1 : 0; }

    // As a driver: invalidates exactly what g names (all of it if g overflowed), then releases.
    void flush(Gather& g) {
        mem.check_clean();
        invalidate_ranges(mem, g);
        pt.release(g);
    }
    // The release point an owner reaches: parked tables unlinked and flushed, the cache trimmed.
    void release_point() {
        Gather g(hook_for(mem));
        pt.unlink_parked(g);
        flush(g);
        pt.trim();
    }
    Progress map(uint64_t iova, uint64_t pa, uint64_t size, Prot p = {}, uint64_t pgsize = 0) {
        Gather g(hook_for(mem));
        Progress r = pt.map(iova, pa, size, p, g, pgsize);
        flush(g);
        return r;
    }
    Progress unmap(uint64_t iova, uint64_t size) {
        Gather g(hook_for(mem));
        Progress r = pt.unmap(iova, size, g);
        flush(g);
        return r;
    }
    // PA the IOVA translates to, or ~0 when unmapped.
    uint64_t pa(uint64_t iova) {
        auto r = pt.lookup(iova);
        return r.ok() ? r.value.pa : ~uint64_t{0};
    }
    unsigned level(uint64_t iova) {
        auto r = pt.lookup(iova);
        return r.ok() ? r.value.level : 99;
    }
};

inline void expect_progress(Progress p, uint64_t done, Status st) {
    EXPECT_EQ(p.bytes_done, done);
    EXPECT_EQ(p.status, st) << to_string(p.status);
}

}  // namespace iopt_test
