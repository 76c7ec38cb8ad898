// What a concurrent walker can see: every store is recorded, and the order of stores, cleans,
// barriers and invalidations is checked against the rules in page_table.hpp.
#include "tests/unit/iopt_rig.hpp"

using namespace iopt_test;
using Ev = RecordingMemory::Event;

namespace {

constexpr uint64_t K4 = 4 * KiB, M2 = 2 * MiB;

// For every store that links a table: every store into that table came earlier and, for a
// non-coherent walker, was cleaned (the whole page: the pool's zeroes too) before the link; for a
// coherent one, when the link makes the table reachable (a store into a live table), a barrier
// separates the last of them from the link. A link inside a new, still private subtree needs no
// barrier of its own: the one before the subtree's top link orders it (the recording memory checks
// that the whole subtree was written before that barrier). `live_links`: how many such top links.
void expect_tables_complete_before_link(const std::vector<Ev>& log, bool coherent, unsigned min_links,
                                        unsigned live_links = 0) {
    unsigned links = 0, live = 0;
    for (size_t i = 0; i < log.size(); i++) {
        const Ev& link = log[i];
        if (link.kind != Ev::store || (link.b & 3) != 3 || link.a != 0) continue;
        const uint64_t child = link.b & desc::kOa;
        // Leaf pages at level 3 also end in 0b11; a table's address is a pool page.
        bool is_pool_page = false;
        for (size_t j = 0; j < i; j++)
            if (log[j].kind == Ev::alloc && log[j].pa == child) is_pool_page = true;
        if (!is_pool_page) continue;
        links++;
        size_t last_store = 0, last_clean = 0, last_order = 0, alloc = 0;
        for (size_t j = 0; j < i; j++) {
            const Ev& e = log[j];
            if (e.kind == Ev::alloc && e.pa == child) alloc = j;
            if (e.kind == Ev::store && align_down(e.pa, K4) == child) last_store = j;
            if (e.kind == Ev::clean && e.pa == child && e.a == K4) last_clean = j;
            if (e.kind == Ev::order) last_order = j;
        }
        EXPECT_GT(last_store, alloc);
        live += link.live;
        if (coherent) {
            if (link.live) {
                EXPECT_GT(last_order, last_store) << "no barrier between filling a table and linking it";
            }
        } else {
            EXPECT_GT(last_clean, last_store) << "table linked before it was cleaned";
        }
    }
    EXPECT_GE(links, min_links);
    EXPECT_GE(live, live_links);
}

TEST(IoptOrdering, NewTablesAreCompleteAndCleanBeforeTheyAreLinked) {
    for (bool coherent : {false, true}) {
        Rig<Stage1> r(48, coherent);
        r.mem.clear_log();
        ASSERT_TRUE(r.map(0x40000000 - 2 * M2, 0, 4 * M2, Prot{}, K4).ok());  // crosses a 1 GiB boundary
        ASSERT_TRUE(r.map(0x7000000000, 0x200000, 3 * M2).ok());              // blocks in a new level-2 table
        expect_tables_complete_before_link(r.mem.log, coherent, 4 + 2 + 2, 2);
        EXPECT_TRUE(r.mem.violations.empty());
    }
}

TEST(IoptOrdering, SplitIsBreakBeforeMake) {
    Rig<Stage2> r(40, false);
    ASSERT_TRUE(r.map(4 * M2, 0x40000000, M2).ok());
    const uint64_t entry_pa = [&] {  // the level-2 entry holding the block
        uint64_t l1 = r.pt.root_pa();
        uint64_t l2 = static_cast<uint64_t*>(r.pool().virt(l1))[0] & desc::kOa;
        return l2 + 4 * 8;
    }();
    r.mem.clear_log();
    Gather g(hook_for(r.mem));
    ASSERT_TRUE(r.pt.unmap(4 * M2 + 100 * K4, K4, g).ok());
    // The events touching the entry, in order: break, clean, invalidation of the block, make.
    std::vector<const Ev*> seq;
    for (const Ev& e : r.mem.log)
        if ((e.kind == Ev::store && e.pa == entry_pa) || (e.kind == Ev::clean && e.pa <= entry_pa && entry_pa < e.pa + e.a) ||
            e.kind == Ev::invalidate)
            seq.push_back(&e);
    ASSERT_GE(seq.size(), 5u);
    EXPECT_EQ(seq[0]->kind, Ev::store);
    EXPECT_TRUE(seq[0]->a & 1);  // the block...
    EXPECT_EQ(seq[0]->b, 0u);    // ...becomes invalid
    EXPECT_EQ(seq[1]->kind, Ev::clean);
    EXPECT_EQ(seq[2]->kind, Ev::invalidate);
    EXPECT_EQ(seq[2]->pa, 4 * M2);
    EXPECT_EQ(seq[2]->a, M2);
    EXPECT_EQ(seq[3]->kind, Ev::store);
    EXPECT_EQ(seq[3]->a, 0u);
    EXPECT_EQ(seq[3]->b & 3, 3u);  // the new table
    EXPECT_EQ(seq[4]->kind, Ev::clean);
    // The new table held the 511 remaining pages when it was linked.
    const uint64_t* t = static_cast<const uint64_t*>(r.pool().virt(seq[3]->b & desc::kOa));
    uint64_t valid = 0;
    for (int i = 0; i < 512; i++) valid += t[i] & 1;
    EXPECT_EQ(valid, 511u);
    EXPECT_EQ(g.immediate_invalidations(), 1u);
    r.flush(g);
    expect_tables_complete_before_link(r.mem.log, false, 1);
}

TEST(IoptOrdering, FreedTablesWaitForTheFlush) {
    Rig<Stage1> r(39);
    ASSERT_TRUE(r.map(0, 0, 8 * M2, Prot{}, K4).ok());
    r.mem.clear_log();
    Gather g(hook_for(r.mem));
    ASSERT_TRUE(r.pt.unmap(0, 8 * M2, g).ok());
    for (const Ev& e : r.mem.log) EXPECT_NE(e.kind, Ev::free);
    EXPECT_EQ(g.pending_pages(), 9u);
    EXPECT_TRUE(g.tables_freed());
    EXPECT_EQ(r.cached(), 0u);  // nor into the cache
    r.flush(g);
    // The 8 full leaf tables were dropped whole (not zero: to the pool), the level-2 table they
    // left empty is all zeroes again: into the cache.
    int frees = 0;
    for (const Ev& e : r.mem.log) frees += e.kind == Ev::free;
    EXPECT_EQ(frees, 8);
    EXPECT_EQ(r.cached(), 1u);
    EXPECT_EQ(r.tables(), 0u);
}

// Fences per path, counted: one publish (order) per new subtree linked into a live table, none
// for entries written into live tables, none at the end of a map or an unmap (the invalidation
// the caller issues orders an unmap's stores, page_table.hpp), one barrier per split, before the
// hook's invalidation.
TEST(IoptOrdering, FencesAreOnlyWhatTheWalkerNeeds) {
    Rig<Stage1> r(48);
    auto count = [&](Ev::Kind k) {
        unsigned n = 0;
        for (const Ev& e : r.mem.log) n += e.kind == k;
        return n;
    };
    r.mem.clear_log();
    ASSERT_TRUE(r.map(0x5a5a40000000, 0, 4 * K4).ok());  // a new level-1, level-2 and leaf table
    EXPECT_EQ(count(Ev::order), 1u);
    EXPECT_EQ(count(Ev::barrier), 0u);
    r.mem.clear_log();
    ASSERT_TRUE(r.map(0x5a5a40000000 + 8 * K4, 0, K4).ok());  // into the existing leaf table
    EXPECT_EQ(count(Ev::order), 0u);
    EXPECT_EQ(count(Ev::barrier), 0u);
    r.mem.clear_log();
    ASSERT_TRUE(r.unmap(0x5a5a40000000, 4 * K4).ok());
    ASSERT_TRUE(r.unmap(0x5a5a40000000 + 8 * K4, K4).ok());  // empties and unlinks three tables
    EXPECT_EQ(count(Ev::order), 0u);
    EXPECT_EQ(count(Ev::barrier), 0u);
    ASSERT_TRUE(r.map(M2, 0x40000000, M2).ok());
    r.mem.clear_log();
    ASSERT_TRUE(r.unmap(M2 + K4, K4).ok());  // split: break, barrier, invalidation, order, make
    EXPECT_EQ(count(Ev::barrier), 1u);
    EXPECT_EQ(count(Ev::order), 1u);
    size_t barrier_at = 0, hook_at = 0;
    for (size_t i = 0; i < r.mem.log.size(); i++) {
        if (r.mem.log[i].kind == Ev::barrier) barrier_at = i;
        if (r.mem.log[i].kind == Ev::invalidate && !hook_at) hook_at = i;
    }
    EXPECT_LT(barrier_at, hook_at);
}

// A walker that looks after every store into a reachable table sees, for every page, the old
// translation, the new one, or (only inside a block being split) nothing; never a mix.
TEST(IoptOrdering, ConcurrentWalkerSeesOldOrNewTranslations) {
    Rig<Stage2> r(40);
    struct State {
        std::map<uint64_t, uint64_t> page;  // iova page -> pa page
    };
    auto snapshot = [&] {
        State s;
        for (const Leaf& l : walk(r.pool(), r.pt.geometry(), r.pt.root_pa()).leaves)
            for (uint64_t o = 0; o < l.size; o += K4) s.page[l.iova + o] = l.pa + o;
        return s;
    };
    struct Step {
        bool map;
        uint64_t iova, pa, size;
    };
    const Step steps[] = {
        {true, 0, 0x10000000, 3 * M2},          // blocks
        {true, 3 * M2 + 5 * K4, 0x20000000, 40 * K4},
        {false, M2 + 17 * K4, 0, 3 * K4},       // split
        {false, 3 * M2 + 5 * K4, 0, 40 * K4},   // empties a table
        {false, 0, 0, M2},
        {true, 0, 0x30000000, 8 * K4},
    };
    for (const Step& s : steps) {
        State before = snapshot();
        uint64_t bbm_lo = 0, bbm_hi = 0;
        unsigned checks = 0;
        r.mem.after_store = [&] {
            checks++;
            for (const Leaf& l : walk(r.pool(), r.pt.geometry(), r.pt.root_pa()).leaves)
                for (uint64_t o = 0; o < l.size; o += K4) {
                    uint64_t a = l.iova + o;
                    bool old_ok = before.page.count(a) && before.page[a] == l.pa + o;
                    bool new_ok = s.map && a >= s.iova && a < s.iova + s.size && l.pa + o == s.pa + (a - s.iova);
                    EXPECT_TRUE(old_ok || new_ok) << std::hex << a;
                }
            // Pages outside the operation never disappear, except while a block is broken.
            State now = snapshot();
            for (auto& [a, pa] : before.page) {
                bool outside = a < s.iova || a >= s.iova + s.size, broken = a >= bbm_lo && a < bbm_hi;
                if (outside && !broken) {
                    EXPECT_TRUE(now.page.count(a)) << std::hex << a;
                }
            }
        };
        if (!s.map) {  // a split breaks the block holding the start or the end of the range
            bbm_lo = align_down(s.iova, M2);
            bbm_hi = align_up(s.iova + s.size, M2);
        }
        Progress p = s.map ? r.map(s.iova, s.pa, s.size) : r.unmap(s.iova, s.size);
        r.mem.after_store = nullptr;
        EXPECT_TRUE(p.ok());
        EXPECT_GT(checks, 0u);
        State after = snapshot();
        for (auto& [a, pa] : before.page) {
            if (a < s.iova || a >= s.iova + s.size) {
                EXPECT_EQ(after.page[a], pa);
            }
        }
    }
    EXPECT_TRUE(r.mem.violations.empty());
}

}  // namespace
