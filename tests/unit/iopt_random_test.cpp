// Randomised operation sequences against a reference model, for both formats and several input
// sizes. Every sequence prints nothing unless it fails; the failure names its seed.
//   IOPT_SEED=<n>  first seed (default fixed, so runs are reproducible); sequence k uses n + k
//   IOPT_SEQS=<n>  sequences per format and input size
//   IOPT_TRACE=1   print every operation and its result
// Replay one failing sequence: IOPT_SEED=<seed> IOPT_SEQS=1 build/host/unit_tests --gtest_filter='IoptRandom*'
#include <stdio.h>
#include <stdlib.h>

#include <iterator>
#include <new>
#include <random>

#include "tests/unit/iopt_support.hpp"

using namespace iopt_test;

namespace {

constexpr uint64_t K4 = 4 * KiB, M2 = 2 * MiB, G1 = GiB;
constexpr uint64_t kDefaultSeed = 0x10b7;
constexpr uint64_t kDefaultSeqs = 1500;
constexpr int kOpsPerSeq = 24;
constexpr size_t kPoolPages = 1024;

uint64_t env_or(const char* name, uint64_t dflt) {
    const char* v = getenv(name);
    return v && *v ? strtoull(v, nullptr, 0) : dflt;
}

template <class F>
class Sequence {
public:
    // Buffers reused from one sequence to the next: fresh large allocations (page faults under
    // ASan) would otherwise dominate the run time.
    struct Scratch {
        std::vector<uint8_t> phys = std::vector<uint8_t>((kPoolPages + 1) * K4);
        alignas(PagePool) unsigned char pool[sizeof(PagePool)];
        Walk walk;
    };

    Sequence(Scratch& scratch, unsigned ias, uint64_t seed)
        : ias_(ias), oas_(seed % 3 == 0 ? 48 : 40), top_(uint64_t{1} << ias), rng_(seed),
          pool_(new (scratch.pool) PagePool(align_up(reinterpret_cast<uintptr_t>(scratch.phys.data()), K4) - kPhysBase)),
          mem_(*pool_, (seed & 1) != 0), pt_(mem_, ias, oas_), w_(scratch.walk) {
        EXPECT_EQ(pool_->add_region(kPhysBase, kPoolPages * K4), Status::ok);
        EXPECT_EQ(pt_.init(), Status::ok);
        mem_.keep_log = false;
        mem_.set_root(pt_.root_pa(), pt_.geometry().root_tables, pt_.geometry().start_level);
        window_ = min<uint64_t>(top_ / 2, 8 * G1);
    }

    void run() {
        for (int op = 0; op < kOpsPerSeq && !::testing::Test::HasFailure(); op++) {
            SCOPED_TRACE("op " + std::to_string(op));
            if (rng_() % 100 < 55) do_map(); else do_unmap();
            verify();
        }
        if (::testing::Test::HasFailure()) return;
        // Unmap everything that is left: every table goes back to the pool, then the root.
        auto extents = model_.m;
        for (auto& [iova, e] : extents) expect_unmap(iova, e.size, e.size, Status::ok, false);
        verify();
        // Nothing mapped: what the table still holds is its parked tables (linked, empty, with the
        // walks above them) and its cache of empty tables, both bounded, and the release point
        // (unlink the parked ones, invalidate what that gathered, release, trim) gives it all back.
        using PT = PageTable<F, RecordingMemory>;
        EXPECT_LE(pt_.cached_tables(), PT::kCacheTables);
        EXPECT_LE(pt_.parked_tables(), PT::kParkedTables);
        EXPECT_LE(pool_->used_pages(),
                  pt_.geometry().root_tables + pt_.cached_tables() + pt_.parked_tables() * (pt_.geometry().levels() - 1));
        Gather g(hook_for(mem_));
        EXPECT_EQ(pt_.unlink_parked(g), w_.empty_tables);
        flush(g);
        verify();
        EXPECT_EQ(w_.tables, 0u);
        pt_.trim();
        EXPECT_EQ(pool_->used_pages(), pt_.geometry().root_tables);
        pt_.destroy();
        EXPECT_EQ(pool_->used_pages(), 0u);
    }

private:
    uint64_t pick(uint64_t n) { return n ? rng_() % n : 0; }

    // A range in one of a few hot zones so that operations collide, split and empty tables.
    void pick_range(uint64_t& iova, uint64_t& size, uint64_t& align) {
        const uint64_t r = pick(100);
        uint64_t zone;
        if (r < 50) {
            align = K4;
            size = (pick(10) == 0 ? 1 + pick(1100) : 1 + pick(48)) * K4;
            zone = 64 * MiB;
        } else if (r < 80) {
            align = pick(5) == 0 ? K4 : M2;
            size = (1 + pick(4)) * M2 + (pick(4) == 0 ? K4 * (1 + pick(8)) : 0);
            zone = 256 * MiB;
        } else if (r < 95) {
            align = G1;
            size = G1 + (pick(3) == 0 ? M2 + K4 : 0);
            zone = window_;
        } else {
            align = K4;
            size = (1 + pick(2048)) * K4;
            zone = window_;
        }
        // Zones at the bottom, around the 1 GiB mark and at the top of the input range.
        const uint64_t bases[] = {0, min<uint64_t>(G1 > zone / 2 ? G1 - zone / 2 : 0, top_ - zone), top_ - zone};
        const uint64_t zb = align_down(bases[pick(3)], align);
        iova = zb + pick(zone / align) * align;
        if (iova + size > top_) iova = align_down(top_ - size, align);
    }

    // Mostly at the IOVA's offset in 1 GiB, so that blocks fit. Large ranges keep at least the 2 MiB
    // offset: hundreds of leaf tables per operation would only slow the checks down.
    uint64_t pick_pa(uint64_t iova, uint64_t size) {
        const uint64_t lim = uint64_t{1} << oas_;
        if (pick(4)) return pick(lim / G1 - 2) * G1 + (iova & (G1 - 1));
        const uint64_t align = size >= 64 * M2 ? M2 : K4;
        return align_down(pick(lim - size), align) + (iova & (align - 1));
    }

    Prot pick_prot() {
        static const uint8_t perms[] = {kRead, kWrite, kRead | kWrite, kRead | kExec, kRead | kWrite | kExec, kWrite | kExec};
        Prot p;
        p.perm = perms[pick(6)];
        p.type = static_cast<MemType>(pick(3));
        const Share shares[] = {Share::none, Share::outer, Share::inner};
        p.share = shares[pick(3)];
        if (F::kStage == Stage::s1) {
            p.privileged = pick(4) == 0;
            p.not_global = pick(2) == 0;
        }
        return p;
    }

    bool inject() {
        if (pick(100) >= 6) return false;
        pool_->fail_after(pick(3));
        return true;
    }

    void do_map() {
        uint64_t iova, size, align;
        pick_range(iova, size, align);
        const uint64_t pa = pick_pa(iova, size);
        const Prot prot = pick_prot();
        uint64_t pgsize = 0;
        if (pick(4) == 0) {
            const uint64_t sizes[] = {K4, M2, G1};
            pgsize = sizes[pick(3)];
            if (pgsize == K4 && size >= 64 * M2) pgsize = M2;  // as above: keep leaf tables few
        }
        const bool bad = pgsize && !is_aligned(iova | pa | size, pgsize);
        const bool injected = inject();
        Gather g(hook_for(mem_));
        Progress p = pt_.map(iova, pa, size, prot, g, pgsize);
        pool_->fail_after(SIZE_MAX);
        trace(describe("map", iova, size) + " pa " + hex(pa) + " pgsize " + hex(pgsize), p, injected);
        SCOPED_TRACE(describe("map", iova, size) + " pa " + hex(pa) + " pgsize " + hex(pgsize));
        if (bad) {
            EXPECT_EQ(p.status, Status::invalid_argument);
            EXPECT_EQ(p.bytes_done, 0u);
        } else {
            uint64_t hit = model_.first_mapped(iova, iova + size);
            if (pgsize && hit < iova + size) hit = align_down(hit, pgsize);
            check_progress(p, hit - iova, hit == iova + size ? Status::ok : Status::in_use, injected);
            EXPECT_TRUE(is_aligned(p.bytes_done, pgsize ? pgsize : K4));
            model_.insert(iova, p.bytes_done, pa, effective<F>(prot), pgsize, ++calls_);
        }
        check_gather(g, iova, p.bytes_done, false, false);
        flush(g);
    }

    void do_unmap() {
        uint64_t iova, size, align;
        if (!model_.m.empty() && pick(10) < 6) {
            auto it = model_.m.begin();
            std::advance(it, static_cast<long>(pick(model_.m.size())));
            const uint64_t s = it->first, n = it->second.size / K4;
            const uint64_t mode = pick(10);
            if (mode < 3) {
                iova = s, size = n * K4;
            } else if (mode < 8) {
                uint64_t a = pick(n), b = a + 1 + pick(n - a);
                iova = s + a * K4, size = (b - a) * K4;
            } else {
                iova = s + pick(n) * K4, size = (1 + pick(2 * n + 600)) * K4;
            }
            if (iova + size > top_) size = top_ - iova;
        } else {
            pick_range(iova, size, align);
        }
        const uint64_t hole = model_.first_unmapped(iova, iova + size);
        expect_unmap(iova, size, hole - iova, hole == iova + size ? Status::ok : Status::not_found, true);
    }

    void expect_unmap(uint64_t iova, uint64_t size, uint64_t done, Status st, bool may_inject) {
        const bool injected = may_inject && inject();
        Gather g(hook_for(mem_));
        const uint64_t evictions = pt_.evictions();
        Progress p = pt_.unmap(iova, size, g);
        pool_->fail_after(SIZE_MAX);
        trace(describe("unmap", iova, size), p, injected);
        SCOPED_TRACE(describe("unmap", iova, size));
        check_progress(p, done, st, injected);
        model_.erase(iova, iova + p.bytes_done);
        check_gather(g, iova, p.bytes_done, true, pt_.evictions() != evictions);
        flush(g);
    }

    void check_progress(Progress p, uint64_t done, Status st, bool injected) {
        if (injected && p.status == Status::no_memory) {
            EXPECT_LE(p.bytes_done, done);
            EXPECT_TRUE(is_aligned(p.bytes_done, K4));
            return;
        }
        EXPECT_EQ(p.status, st) << to_string(p.status);
        EXPECT_EQ(p.bytes_done, done);
    }

    // `evicted`: the call also unlinked a parked table elsewhere, which adds one page of its span.
    void check_gather(const Gather& g, uint64_t iova, uint64_t done, bool unmap, bool evicted) {
        if (evicted) {
            EXPECT_TRUE(g.tables_freed());
            EXPECT_TRUE(g.removed());
            bool covered = done == 0;
            for (unsigned i = 0; i < g.range_count(); i++)
                covered = covered || (g.range(i).iova <= iova && iova + done <= g.range(i).end());
            EXPECT_TRUE(covered || g.overflowed());
        } else if (done == 0) {
            EXPECT_TRUE(g.empty());
        } else {
            ASSERT_EQ(g.range_count(), 1u);
            EXPECT_EQ(g.range(0).iova, iova);
            EXPECT_EQ(g.range(0).size, done);
            EXPECT_EQ(g.removed(), unmap);
        }
        if (g.pending_pages()) {
            EXPECT_TRUE(g.tables_freed());
        }
        if (!unmap) {
            EXPECT_EQ(g.pending_pages(), 0u);
        }
    }

    // As a driver: exactly the ranges g names are invalidated (the recorder checks that they cover
    // every table the call unlinked), then release.
    void flush(Gather& g) {
        mem_.check_clean();
        invalidate_ranges(mem_, g);
        pt_.release(g);
    }

    void verify() {
        Walk& w = w_;
        walk_into(*pool_, pt_.geometry(), pt_.root_pa(), w);
        ASSERT_TRUE(w.errors.empty()) << w.errors.front();
        // The only empty tables linked are parked ones (leaf tables; a parked one may be in use again).
        size_t parked_empty = 0;
        for (size_t k = 0; k < pt_.parked_tables(); k++)
            parked_empty += PageTable<F, RecordingMemory>::valid_entries(pt_.side_word(pt_.parked_table(k))) == 0;
        EXPECT_EQ(w.empty_tables, parked_empty);
        // No leak, no early free: the root, the tables linked (parked included), the cached empty ones.
        EXPECT_EQ(pool_->used_pages(), pt_.geometry().root_tables + w.tables + pt_.cached_tables());
        ASSERT_TRUE(mem_.violations.empty()) << mem_.violations.front();
        // Every table's side counts agree with a full scan of it.
        using PT = PageTable<F, RecordingMemory>;
        for (size_t k = 0; k < pt_.parked_tables(); k++) {
            const uint64_t pa = pt_.parked_table(k);
            EXPECT_TRUE(mem_.live(pa)) << "parked table " << hex(pa) << " is not linked";
            EXPECT_TRUE(pt_.side_word(pa) & PT::kParkedBit) << hex(pa);
            bool found = false;
            for (const TableCount& t : w.counts) found = found || t.pa == pa;
            EXPECT_TRUE(found) << "parked table " << hex(pa) << " is not a table of the walk";
        }
        for (const TableCount& t : w.counts) {
            const uint32_t word = pt_.side_word(t.pa);
            if (PT::valid_entries(word) != t.valid || PT::full_entries(word) != t.full)
                FAIL() << "side counts of table " << hex(t.pa) << ": " << PT::valid_entries(word) << " valid, "
                       << PT::full_entries(word) << " full; a scan finds " << t.valid << " and " << t.full;
        }
        // Cached tables are empty, unreachable, and counted as empty.
        for (size_t k = 0; k < pt_.cached_tables(); k++) {
            const uint64_t pa = pt_.cached_table(k);
            EXPECT_FALSE(mem_.live(pa)) << hex(pa);
            EXPECT_EQ(PT::valid_entries(pt_.side_word(pa)), 0u);
            const uint64_t* t = static_cast<const uint64_t*>(pool_->virt(pa));
            for (size_t i = 0; i < kEntries; i++)
                if (t[i]) FAIL() << "cached table " << hex(pa) << " holds " << hex(t[i]) << " at " << i;
        }
        // Leaves and extents are both in IOVA order: walk them together, with plain comparisons
        // (a gtest assertion per leaf would dominate the run time).
        uint64_t total = 0, s = 0;
        auto x = model_.m.begin();
        for (const Leaf& l : w.leaves) {
            while (x != model_.m.end() && x->first + x->second.size <= l.iova) ++x;
            ASSERT_TRUE(x != model_.m.end() && x->first <= l.iova) << "mapped in the table, not in the model: " << hex(l.iova);
            const Extent& e = x->second;
            const uint64_t start = x->first;
            if (l.iova + l.size > start + e.size) FAIL() << "a leaf spans separate map calls at " << hex(l.iova);
            if (l.pa != e.pa + (l.iova - start)) FAIL() << "wrong pa at " << hex(l.iova);
            if (!(F::decode(l.raw) == e.prot)) FAIL() << "wrong attributes at " << hex(l.iova);
            if (e.pgsize && l.size != e.pgsize) FAIL() << "leaf size " << hex(l.size) << " at " << hex(l.iova);
            total += l.size;
        }
        EXPECT_EQ(total, model_.bytes());
        // lookup agrees with the model, inside extents and anywhere.
        for (int k = 0; k < 4; k++) {
            uint64_t a = pick(top_);
            if (k < 2 && !model_.m.empty()) {
                auto it = model_.m.begin();
                std::advance(it, static_cast<long>(pick(model_.m.size())));
                a = it->first + pick(it->second.size);
            }
            auto r = pt_.lookup(a);
            const Extent* e = model_.find(a, &s);
            if (!e) {
                EXPECT_EQ(r.status, Status::not_found) << hex(a);
                continue;
            }
            ASSERT_TRUE(r.ok()) << hex(a);
            EXPECT_EQ(r.value.pa, e->pa + (a - s));
            EXPECT_EQ(r.value.prot, e->prot);
        }
    }

    void trace(const std::string& what, Progress p, bool injected) {
        if (trace_)
            printf("  %s%s -> %s +%s\n", what.c_str(), injected ? " (pool failing)" : "", hex(p.bytes_done).c_str(),
                   to_string(p.status));
    }

    static std::string hex(uint64_t v) {
        char b[24];
        snprintf(b, sizeof b, "%#llx", static_cast<unsigned long long>(v));
        return b;
    }
    static std::string describe(const char* what, uint64_t iova, uint64_t size) {
        return std::string(what) + " " + hex(iova) + " +" + hex(size);
    }

    unsigned ias_, oas_;
    uint64_t top_, window_;
    std::mt19937_64 rng_;
    PagePool* pool_;  // trivially destructible: placement-new'd into the scratch
    RecordingMemory mem_;
    PageTable<F, RecordingMemory> pt_;
    Walk& w_;
    Model model_;
    uint64_t calls_ = 0;
    bool trace_ = env_or("IOPT_TRACE", 0) != 0;
};

template <class F>
void run_many(unsigned ias) {
    const uint64_t seed0 = env_or("IOPT_SEED", kDefaultSeed), n = env_or("IOPT_SEQS", kDefaultSeqs);
    printf("[ iopt    ] stage %d, IAS %u: %llu sequences, seeds %llu..%llu (IOPT_SEED, IOPT_SEQS)\n",
           static_cast<int>(F::kStage), ias, static_cast<unsigned long long>(n), static_cast<unsigned long long>(seed0),
           static_cast<unsigned long long>(seed0 + n - 1));
    auto scratch = std::make_unique<typename Sequence<F>::Scratch>();
    for (uint64_t k = 0; k < n && !::testing::Test::HasFailure(); k++) {
        SCOPED_TRACE("replay with IOPT_SEED=" + std::to_string(seed0 + k) + " IOPT_SEQS=1");
        Sequence<F>(*scratch, ias, seed0 + k).run();
    }
}

TEST(IoptRandom, Stage1Ias32) { run_many<Stage1>(32); }
TEST(IoptRandom, Stage1Ias39) { run_many<Stage1>(39); }
TEST(IoptRandom, Stage1Ias40) { run_many<Stage1>(40); }
TEST(IoptRandom, Stage1Ias48) { run_many<Stage1>(48); }
TEST(IoptRandom, Stage2Ias32) { run_many<Stage2>(32); }
TEST(IoptRandom, Stage2Ias39) { run_many<Stage2>(39); }
TEST(IoptRandom, Stage2Ias40Concatenated) { run_many<Stage2>(40); }
TEST(IoptRandom, Stage2Ias43Concatenated16) { run_many<Stage2>(43); }
TEST(IoptRandom, Stage2Ias48) { run_many<Stage2>(48); }

}  // namespace
