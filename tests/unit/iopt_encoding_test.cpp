// Descriptor encodings of both stages and the geometry helpers drivers program hardware with.
#include "arch/fill.hpp"
#include "common/iopt/memory.hpp"
#include "tests/unit/iopt_rig.hpp"

using namespace iopt_test;

namespace {

TEST(IoptGeometry, StartLevelsAndConcatenationFollowTheArchitecture) {
    struct Row {
        Stage stage;
        unsigned ias, start, tables, entries, sl0;
    };
    const Row rows[] = {
        {Stage::s1, 32, 1, 1, 4, 0},     {Stage::s1, 39, 1, 1, 512, 0}, {Stage::s1, 40, 0, 1, 2, 0},
        {Stage::s1, 48, 0, 1, 512, 0},   {Stage::s2, 32, 1, 1, 4, 1},   {Stage::s2, 39, 1, 1, 512, 1},
        {Stage::s2, 40, 1, 2, 1024, 1},  {Stage::s2, 42, 1, 8, 4096, 1}, {Stage::s2, 43, 1, 16, 8192, 1},
        {Stage::s2, 44, 0, 1, 32, 2},    {Stage::s2, 48, 0, 1, 512, 2},
    };
    for (const Row& r : rows) {
        Geometry g = make_geometry(r.stage, r.ias, 40);
        SCOPED_TRACE(r.ias);
        EXPECT_TRUE(g.valid());
        EXPECT_EQ(g.start_level, r.start);
        EXPECT_EQ(g.root_tables, r.tables);
        EXPECT_EQ(g.root_entries(), r.entries);
        EXPECT_EQ(g.t0sz(), 64 - r.ias);
        if (r.stage == Stage::s2) {
            EXPECT_EQ(g.sl0(), r.sl0);
        }
    }
    // Every stage-2 size we accept has a legal start level (Arm ARM S2InconsistentSL), at most 16
    // concatenated tables, and the root resolves exactly IAS bits.
    for (unsigned ias = kMinIas; ias <= kMaxIas; ias++) {
        Geometry g = make_geometry(Stage::s2, ias, 48);
        EXPECT_TRUE(s2_start_level_legal(ias, g.start_level)) << ias;
        EXPECT_LE(g.root_tables, kMaxConcat);
        EXPECT_EQ(uint64_t{g.root_entries()} << level_shift(g.start_level), uint64_t{1} << ias);
        Geometry s1 = make_geometry(Stage::s1, ias, 48);
        EXPECT_EQ(s1.root_tables, 1u);
        EXPECT_LE(s1.root_entries(), 512u);
        EXPECT_GT(s1.root_entries(), 1u);
    }
    EXPECT_FALSE(s2_start_level_legal(40, 2));  // would need 1024 tables at level 2
    EXPECT_FALSE(s2_start_level_legal(44, 1));  // 32 tables at level 1: too many
    EXPECT_FALSE(make_geometry(Stage::s1, 31, 40).valid());
    EXPECT_FALSE(make_geometry(Stage::s2, 49, 40).valid());
    EXPECT_FALSE(make_geometry(Stage::s2, 40, 41).valid());  // not an architected output size
    EXPECT_EQ(make_geometry(Stage::s2, 40, 44).ps(), 4u);
    EXPECT_EQ(make_geometry(Stage::s2, 40, 48).ps(), 5u);
}

TEST(IoptGeometry, ConcatenatedRootIsAllocatedAlignedToItsSize) {
    Rig<Stage2> r(42);  // 8 tables
    EXPECT_EQ(r.pt.root_pa() % (8 * kPageSize), 0u);
    EXPECT_EQ(r.base - r.used_before_init, 8u);
    PageTable<Stage2, RecordingMemory> bad(r.mem, 50, 40);
    EXPECT_EQ(bad.init(), Status::invalid_argument);
}

TEST(IoptEncoding, Stage1Bits) {
    EXPECT_EQ(Stage1::kMair, 0x0444ffull);
    Prot rw{kRead | kWrite, MemType::normal_wb, Share::inner};
    uint64_t e = Stage1::encode(rw);
    EXPECT_EQ(e & bits(4, 2), 0u);           // AttrIndx 0: write-back
    EXPECT_EQ(e & bits(9, 8), 3ull << 8);    // inner shareable
    EXPECT_TRUE(e & bit(10));                // AF
    EXPECT_TRUE(e & bit(6));                 // AP[1]: unprivileged access, as an SMMU stream needs
    EXPECT_FALSE(e & bit(7));                // writable
    EXPECT_FALSE(e & bit(11));               // global
    EXPECT_EQ(e & (bit(53) | bit(54)), bit(53) | bit(54));  // PXN and UXN
    Prot ro{kRead | kExec, MemType::device, Share::outer, true, true};
    e = Stage1::encode(ro);
    EXPECT_EQ((e >> 2) & 7, 2u);             // AttrIndx 2: device
    EXPECT_EQ((Stage1::kMair >> 16) & 0xff, 0x04u);
    EXPECT_TRUE(e & bit(7));                 // read-only
    EXPECT_FALSE(e & bit(6));                // privileged only
    EXPECT_TRUE(e & bit(11));                // nG
    EXPECT_FALSE(e & (bit(53) | bit(54)));   // executable
    EXPECT_EQ((Stage1::encode(Prot{kRead, MemType::normal_nc}) >> 2) & 7, 1u);
    EXPECT_EQ((Stage1::kMair >> 8) & 0xff, 0x44u);
    // No write-only at stage 1: it reads back as read/write.
    EXPECT_EQ(Stage1::decode(Stage1::encode(Prot{kWrite})).perm, kRead | kWrite);
}

TEST(IoptEncoding, Stage2Bits) {
    uint64_t e = Stage2::encode(Prot{kRead | kWrite, MemType::normal_wb, Share::inner});
    EXPECT_EQ((e >> 2) & 0xf, 0xfu);         // MemAttr: outer WB, inner WB
    EXPECT_EQ((e >> 6) & 3, 3u);             // S2AP read + write
    EXPECT_EQ((e >> 8) & 3, 3u);
    EXPECT_TRUE(e & bit(10));
    EXPECT_TRUE(e & bit(54));                // XN
    e = Stage2::encode(Prot{kWrite | kExec, MemType::device, Share::none});
    EXPECT_EQ((e >> 2) & 0xf, 0x1u);         // Device-nGnRE
    EXPECT_EQ((e >> 6) & 3, 2u);             // write only
    EXPECT_FALSE(e & bit(54));
    EXPECT_EQ((Stage2::encode(Prot{kRead, MemType::normal_nc}) >> 2) & 0xf, 0x5u);
    EXPECT_EQ((Stage2::encode(Prot{kRead}) >> 6) & 3, 1u);
    EXPECT_FALSE(Stage2::accepts(Prot{kRead, MemType::normal_wb, Share::inner, true}));
    EXPECT_FALSE(Stage2::accepts(Prot{kRead, MemType::normal_wb, Share::inner, false, true}));
}

template <class F>
void every_prot_reads_back(unsigned ias) {
    Rig<F> r(ias);
    uint64_t iova = 0;
    std::vector<std::pair<uint64_t, uint64_t>> mapped;
    for (uint8_t perm = 1; perm < 8; perm++) {
        if (!(perm & (kRead | kWrite))) continue;
        for (MemType t : {MemType::normal_wb, MemType::normal_nc, MemType::device})
            for (Share s : {Share::none, Share::outer, Share::inner})
                for (int flags = 0; flags < (F::kStage == Stage::s1 ? 4 : 1); flags++) {
                    Prot p{perm, t, s, (flags & 1) != 0, (flags & 2) != 0};
                    for (uint64_t size : {kPageSize, 2 * MiB}) {  // pages and blocks alike
                        iova = align_up(iova, size);
                        ASSERT_TRUE(r.map(iova, 0x40000000, size, p).ok());
                        auto l = r.pt.lookup(iova + size - 8);
                        ASSERT_TRUE(l.ok());
                        EXPECT_EQ(l.value.prot, effective<F>(p)) << int(perm) << " " << int(t) << " " << int(s);
                        EXPECT_EQ(l.value.pa, 0x40000000 + size - 8);
                        EXPECT_EQ(l.value.size, size);
                        mapped.emplace_back(iova, size);
                        iova += size;
                    }
                }
    }
    for (auto [a, size] : mapped) EXPECT_TRUE(r.unmap(a, size).ok());
    r.release_point();  // parked leaf tables too
    EXPECT_EQ(r.tables(), 0u);
}

TEST(IoptEncoding, LookupReadsBackEveryPermissionAndType) {
    every_prot_reads_back<Stage1>(39);
    every_prot_reads_back<Stage2>(40);
}

TEST(IoptEncoding, NonCoherentWalkerGetsOneCleanPerTable) {
    HostPool host(1024);
    PoolMemory mem(*host.pool, false);
    PageTable<Stage2, PoolMemory> pt(mem, 48, 48);
    ASSERT_EQ(pt.init(), Status::ok);
    auto& log = cache::clean_log();
    uint64_t calls = log.calls, bytes = log.bytes;
    Gather g;
    ASSERT_TRUE(pt.map(0, 0, GiB, Prot{}, g, kPageSize).ok());
    // 512 leaf tables, the level-2 and level-1 tables (each cleaned whole), one root entry.
    EXPECT_EQ(log.calls - calls, 512u + 2u + 1u);
    EXPECT_EQ(log.bytes - bytes, 514u * kPageSize + 8u);
    pt.release(g);
    pt.destroy();

    PoolMemory coherent(*host.pool, true);
    PageTable<Stage1, PoolMemory> pt1(coherent, 48, 48);
    ASSERT_EQ(pt1.init(), Status::ok);
    calls = log.calls;
    ASSERT_TRUE(pt1.map(0, 0, 64 * MiB, Prot{}, g, kPageSize).ok());
    EXPECT_EQ(log.calls, calls);
    ASSERT_TRUE(pt1.unmap(0, 64 * MiB, g).ok());
    pt1.release(g);
    pt1.destroy();
    EXPECT_EQ(host.pool->used_pages(), 0u);
}

// A large map takes its leaf tables from the pool a batch at a time; what a batch took and did
// not use goes straight back, whether the map completes, the pool runs out or the guest's quota
// does, so the pool and the quota always read exactly the tables the table holds.
TEST(IoptEncoding, LeafTableBatchesGiveBackWhatTheyDidNotUse) {
    HostPool host(2048);
    const size_t before = host.pool->used_pages();
    {
        PoolMemory mem(*host.pool, true);
        PageTable<Stage1, PoolMemory> pt(mem, 48, 48);
        ASSERT_EQ(pt.init(), Status::ok);
        Gather g;
        // 3 whole leaf tables and part of a fourth: a batch of 3 is taken, the fourth is zeroed.
        ASSERT_TRUE(pt.map(0, 0, 6 * MiB + 8 * KiB, Prot{}, g, kPageSize).ok());
        EXPECT_EQ(mem.held(), 1u + 2u + 4u);  // root, levels 1 and 2, four leaf tables
        EXPECT_EQ(host.pool->used_pages() - before, mem.held());
        for (uint64_t o : {uint64_t{0}, 2 * MiB + 4 * KiB, 6 * MiB + 4 * KiB}) EXPECT_EQ(pt.lookup(o).value.pa, o);
        EXPECT_EQ(pt.lookup(6 * MiB + 8 * KiB).status, Status::not_found);
        // The pool runs out inside a batch: the map stops at a leaf table's edge, nothing extra held.
        host.pool->fail_after(5);
        Progress p = pt.map(GiB, GiB, 64 * MiB, Prot{}, g, kPageSize);
        host.pool->fail_after(SIZE_MAX);
        EXPECT_EQ(p.status, Status::no_memory);
        EXPECT_EQ(p.bytes_done, 4 * 2 * MiB);  // a level-2 table and four leaf tables
        EXPECT_EQ(host.pool->used_pages() - before, mem.held());
        EXPECT_EQ(pt.lookup(GiB + p.bytes_done).status, Status::not_found);
        EXPECT_EQ(pt.lookup(GiB + p.bytes_done - kPageSize).value.pa, GiB + p.bytes_done - kPageSize);
        ASSERT_TRUE(pt.unmap(0, 6 * MiB + 8 * KiB, g).ok());
        ASSERT_TRUE(pt.unmap(GiB, p.bytes_done, g).ok());
        pt.release(g);
        pt.destroy();
    }
    EXPECT_EQ(host.pool->used_pages(), before);
    {
        PageQuota quota(20);  // the guest's share ends inside the first batch
        PoolMemory mem(*host.pool, true, &quota);
        PageTable<Stage1, PoolMemory> pt(mem, 48, 48);
        ASSERT_EQ(pt.init(), Status::ok);
        Gather g;
        Progress p = pt.map(0, 0, GiB, Prot{}, g, kPageSize);
        EXPECT_EQ(p.status, Status::no_memory);
        EXPECT_EQ(p.bytes_done, (20u - 3u) * 2 * MiB);  // root, levels 1 and 2, then 17 leaf tables
        EXPECT_EQ(quota.used(), 20u);
        EXPECT_EQ(mem.held(), 20u);
        EXPECT_EQ(host.pool->used_pages() - before, 20u);
        ASSERT_TRUE(pt.unmap(0, p.bytes_done, g).ok());
        pt.release(g);
        pt.destroy();
        EXPECT_EQ(quota.used(), 0u);
    }
    EXPECT_EQ(host.pool->used_pages(), before);
}

// The host's two fills (32-byte AVX2 stores where the CPU has them, the portable loop) write the
// same values and nothing outside [p, p + n), at every length and alignment a table can ask for.
TEST(IoptEncoding, HostFillsAgreeWithThePortableLoop) {
    static uint64_t a[600], b[600];
    for (size_t off : {size_t{0}, size_t{1}, size_t{3}})
        for (size_t n = 0; n <= 520; n++)
            for (uint64_t step : {uint64_t{1}, uint64_t{4096}, 2 * MiB, GiB}) {
                for (size_t k = 0; k < 600; k++) a[k] = b[k] = 0xdead0000 + k;
                fill_step_portable(a + off, n, 0x1003, step);
                if (arch::host::g_fill_avx2) arch::host::fill_step_avx2(b + off, n, 0x1003, step);
                else arch::fill_step(b + off, n, 0x1003, step);
                for (size_t k = 0; k < 600; k++) {
                    const uint64_t want = k >= off && k < off + n ? 0x1003 + (k - off) * step : 0xdead0000 + k;
                    ASSERT_EQ(a[k], want) << "portable, n " << n << " at " << k;
                    ASSERT_EQ(b[k], want) << "host, n " << n << " at " << k;
                }
            }
    uint64_t c[40] = {};
    arch::fill_step(c, 40, 5, 7);  // whichever the dispatch chose
    for (size_t k = 0; k < 40; k++) EXPECT_EQ(c[k], 5 + 7 * k);
}

}  // namespace
