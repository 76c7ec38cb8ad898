// Page-table benchmarks: time per page of large and scattered maps and unmaps, against the
// memory-bandwidth limit of writing the same PTE bytes, measured in the same run.
#include <benchmark/benchmark.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "arch/cache.hpp"
#include "tests/bench/iopt_fixture.hpp"

using namespace iopt_bench;

namespace {

Fixture& fixture() {
    static Fixture f;
    return f;
}

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Times `measured` only; `setup` and `teardown` run untimed around it.
template <class Setup, class Measured, class Teardown>
void manual(benchmark::State& state, Setup setup, Measured measured, Teardown teardown) {
    for (auto _ : state) {
        setup();
        auto t0 = Clock::now();
        measured();
        auto t1 = Clock::now();
        teardown();
        state.SetIterationTime(seconds(t0, t1));
    }
}

// Table pages the table holds once a workload is over (cached and parked empty tables included),
// then the engine's release point (trim) so that the next workload starts from the root alone.
void held_after(benchmark::State& state, Fixture& f) {
    state.counters["tables"] = static_cast<double>(f.tables());
    f.trim();
}

// One map + unmap pair per iteration, a million of them, the kept page mapped around the loop.
void hot_pair(benchmark::State& state, const HotCase* h) {
    Fixture& f = fixture();
    f.keep(*h);
    for (auto _ : state) f.pair(h->iova, h->size);
    state.counters["tables"] = static_cast<double>(f.tables());  // the kept page's walk and any cached tables
    f.unkeep(*h);
    f.trim();
}

void BM_memset_pte_bytes(benchmark::State& state) {
    static std::vector<uint8_t> buf(kPteBytes4K);
    uint8_t v = 1;
    for (auto _ : state) {
        memset(buf.data(), v++, buf.size());
        benchmark::DoNotOptimize(buf.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(buf.size()));
}

void BM_map_1g_4k(benchmark::State& state) {
    Fixture& f = fixture();
    manual(state, [] {}, [&] { f.map(kMapIova, G1, K4); }, [&] {
        state.counters["tables"] = static_cast<double>(f.tables());
        f.unmap(kMapIova, G1);
    });
}
void BM_unmap_1g_4k(benchmark::State& state) {
    Fixture& f = fixture();
    manual(state, [&] { f.map(kMapIova, G1, K4); }, [&] { f.unmap(kMapIova, G1); }, [&] { held_after(state, f); });
}
void BM_map_1g_2m(benchmark::State& state) {
    Fixture& f = fixture();
    manual(state, [] {}, [&] { f.map(kMapIova, G1, M2); }, [&] {
        state.counters["tables"] = static_cast<double>(f.tables());
        f.unmap(kMapIova, G1);
    });
}
void BM_unmap_1g_2m(benchmark::State& state) {
    Fixture& f = fixture();
    manual(state, [&] { f.map(kMapIova, G1, M2); }, [&] { f.unmap(kMapIova, G1); }, [&] { held_after(state, f); });
}
void BM_map_scattered(benchmark::State& state) {
    Fixture& f = fixture();
    manual(state, [] {}, [&] { f.map_scattered(); }, [&] {
        state.counters["tables"] = static_cast<double>(f.tables());
        f.unmap_scattered();
    });
}
void BM_unmap_scattered(benchmark::State& state) {
    Fixture& f = fixture();
    manual(state, [&] { f.map_scattered(); }, [&] { f.unmap_scattered(); }, [&] { held_after(state, f); });
}

BENCHMARK(BM_memset_pte_bytes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_map_1g_4k)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_unmap_1g_4k)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_map_1g_2m)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_unmap_1g_2m)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_map_scattered)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_unmap_scattered)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Keeps the median of each benchmark (or its only run) for the summary.
class Collect : public benchmark::ConsoleReporter {
public:
    struct Row {
        double us = 0;
        double cpu_us = 0;
        double tables = 0;
    };
    std::map<std::string, Row> rows;

    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) {
            if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
            Row row;
            row.us = r.GetAdjustedRealTime();  // every benchmark here reports microseconds
            row.cpu_us = r.GetAdjustedCPUTime();
            auto t = r.counters.find("tables");
            if (t != r.counters.end()) row.tables = t->second.value;
            rows[r.run_name.function_name] = row;
        }
        ConsoleReporter::ReportRuns(runs);
    }
};

// Instruction counts from the callgrind run that `make bench` does first (iopt_instr): one line
// per scenario, "name instructions units tables zeroed". Missing file: the column stays empty.
std::map<std::string, double> read_instructions() {
    std::map<std::string, double> per_unit;
    const char* path = getenv("IOPT_INSTR");
    FILE* fp = path ? fopen(path, "r") : nullptr;
    if (!fp) return per_unit;
    char name[96];
    double ir, units, tables, zeroed;
    while (fscanf(fp, "%95s %lf %lf %lf %lf", name, &ir, &units, &tables, &zeroed) == 5)
        if (units > 0) per_unit[name] = ir / units;
    fclose(fp);
    return per_unit;
}

void summary(const Collect& c) {
    auto us = [&](const std::string& n) { return c.rows.count(n) ? c.rows.at(n).us : 0.0; };
    auto tables = [&](const std::string& n) { return c.rows.count(n) ? c.rows.at(n).tables : 0.0; };
    auto cpu_ns = [&](const std::string& n) { return c.rows.count(n) ? c.rows.at(n).cpu_us : 0.0; };
    const std::map<std::string, double> instr = read_instructions();
    auto ins = [&](const std::string& n, const char* fmt) {
        static char b[32];
        if (!instr.count(n)) return "n/a";
        snprintf(b, sizeof b, fmt, instr.at(n));
        return static_cast<const char*>(b);
    };
    const double pages1g = static_cast<double>(G1 / K4), scattered = static_cast<double>(fixture().scattered.size());
    const double limit = us("BM_memset_pte_bytes");

    // One-off counts: invalidations a driver would issue, cleans for a non-coherent walker, the
    // least table memory the scattered pages need (distinct level-1, level-2 and leaf tables).
    Fixture& f = fixture();
    const unsigned ranges_map = f.map(kMapIova, G1, K4), ranges_unmap = f.unmap(kMapIova, G1);
    f.trim();
    const size_t held_at_end = f.tables();
    Fixture nc(false);
    const uint64_t cleans0 = cache::clean_log().calls;
    nc.map(kMapIova, G1, K4);
    const uint64_t cleans = cache::clean_log().calls - cleans0;
    nc.unmap(kMapIova, G1);
    std::set<uint64_t> walk_tables;
    for (uint64_t iova : f.scattered)
        for (unsigned shift : {39u, 30u, 21u}) walk_tables.insert((iova >> shift << 2) | (shift - 21) / 9);
    const size_t min_scattered = walk_tables.size();

    char cpu[128] = "unknown CPU";
    if (FILE* fp = fopen("/proc/cpuinfo", "r")) {
        char line[256];
        while (fgets(line, sizeof line, fp))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
                cpu[strcspn(cpu, "\n")] = 0;
                break;
            }
        fclose(fp);
    }
    char date[32];
    time_t now = time(nullptr);
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
    printf("\n## Page-table figures\n\n");
    printf("Machine: %ld cores (%s), Debian 12, g++ -O2, %s.\nStage-1 table, IAS 48 (4 levels), coherent walker; ",
           sysconf(_SC_NPROCESSORS_ONLN), cpu, date);
    printf("medians of Google Benchmark repetitions; \"limit\" is memset of the same %zu PTE bytes;\n", kPteBytes4K);
    printf("instructions from callgrind (engine calls only, the pool's zeroing included); table pages held once the\n"
           "workload is over, cached and parked empty tables included, against the least that what is still mapped needs.\n"
           "Hot rows: CPU time per pair (the machine is shared; Google Benchmark's own lines above show wall time too).\n\n");
    printf("| workload | time | per page or pair | engine/limit | instructions per page or pair | table pages held (minimum) |\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    printf("| memset of the PTE bytes of 1 GiB in 4 KiB pages (limit) | %.1f us | %.3f ns | 1 | | |\n", limit,
           limit * 1e3 / pages1g);
    printf("| map 1 GiB, 4 KiB pages, one call (exact 4K) | %.1f us | %.3f ns | %.2f | %s | %.0f (%zu) |\n", us("BM_map_1g_4k"),
           us("BM_map_1g_4k") * 1e3 / pages1g, limit / us("BM_map_1g_4k"), ins("map_1GiB_4KiB_pages", "%.2f"),
           tables("BM_map_1g_4k"), kMinTables4K);
    printf("| unmap 1 GiB of 4 KiB pages, one aligned call | %.1f us | %.3f ns | %.2f | %s | %.0f (0) |\n", us("BM_unmap_1g_4k"),
           us("BM_unmap_1g_4k") * 1e3 / pages1g, limit / us("BM_unmap_1g_4k"), ins("unmap_1GiB_4KiB_pages", "%.3f"),
           tables("BM_unmap_1g_4k"));
    printf("| map 1 GiB 2 MiB-aligned: 512 blocks | %.2f us | %.4f ns | | %s per 4 KiB | %.0f (2) |\n", us("BM_map_1g_2m"),
           us("BM_map_1g_2m") * 1e3 / pages1g, ins("map_1GiB_2MiB_blocks(per_4KiB)", "%.3f"), tables("BM_map_1g_2m"));
    printf("| unmap 1 GiB of 2 MiB blocks | %.2f us | %.4f ns | | | %.0f (0) |\n", us("BM_unmap_1g_2m"),
           us("BM_unmap_1g_2m") * 1e3 / pages1g, tables("BM_unmap_1g_2m"));
    printf("| map %.0f scattered 4 KiB pages, one call each | %.0f us | %.1f ns | | %s | %.0f (%zu) |\n", scattered,
           us("BM_map_scattered"), us("BM_map_scattered") * 1e3 / scattered, ins("map_10000_scattered_pages", "%.0f"),
           tables("BM_map_scattered"), min_scattered);
    printf("| unmap them, one call each | %.0f us | %.1f ns | | %s | %.0f (0) |\n", us("BM_unmap_scattered"),
           us("BM_unmap_scattered") * 1e3 / scattered, ins("unmap_10000_scattered_pages", "%.0f"), tables("BM_unmap_scattered"));
    for (const HotCase& h : kHotCases) {
        const std::string n = std::string("hot/") + h.name;
        printf("| map + unmap %s, one pair | | %.1f ns | | %s | %.0f (%zu) |\n", h.name, cpu_ns(n), ins(h.name, "%.0f"),
               tables(n), kHotMinTables(h));
    }
    printf("\nAfter every workload and the engine's release point (trim): %zu table pages held (0).\n", held_at_end);
    printf("Invalidation ranges gathered: map 1 GiB = %u, unmap 1 GiB = %u (one per call on a contiguous range).\n",
           ranges_map, ranges_unmap);
    printf("Non-coherent walker: %llu cache-clean calls for the 1 GiB 4 KiB map (one per table, none per PTE).\n",
           static_cast<unsigned long long>(cleans));
    printf("Bar (Linux v6.12 io-pgtable-arm as a user program, measured elsewhere on this machine): 673 instructions\n"
           "and 29.8 ns per 4 KiB pair (918 and 38.8 ns for 16 KiB), scattered unmap 328 instructions and 177 ns per page,\n"
           "aligned 1 GiB unmap 0.128 instructions per page. Targets: hot rows at or below those, aligned 1 GiB unmap\n"
           "<= 0.2 instructions per page, map 1 GiB 4K >= 0.5 of memset and <= 3 instructions per page.\n");
}

// The benchmark is the only -O2 build of the engine on the host (the unit tests run at -O1 with
// sanitizers), so it checks what it measures first: GCC 12 has been seen to miscompile a
// hand-unrolled variant of the fill loop at -O2.
void self_check() {
    auto fail = [](const char* what, uint64_t at) {
        fprintf(stderr, "iopt_bench self-check failed: %s at %#llx\n", what, static_cast<unsigned long long>(at));
        exit(1);
    };
    static uint64_t t[600];
    for (size_t n = 0; n <= 520; n++)
        for (uint64_t step : {uint64_t{1}, K4, M2, G1}) {
            for (uint64_t& x : t) x = 0xdead;
            PoolMemory::fill(t + 1, n, 0x1003, step);
            if (t[0] != 0xdead || t[n + 1] != 0xdead) fail("fill wrote outside its range", n);
            for (size_t i = 0; i < n; i++)
                if (t[1 + i] != 0x1003 + i * step) fail("fill wrote a wrong value", n);
        }
    Fixture& f = fixture();
    for (uint64_t pgsize : {K4, M2}) {
        f.map(kMapIova, G1, pgsize);
        if (pgsize == K4 && f.tables() != kMinTables4K) fail("table count", f.tables());
        for (uint64_t o = 0; o < G1; o += pgsize) {
            auto r = f.pt->lookup(kMapIova + o);
            if (!r.ok() || r.value.pa != kMapPa + o || r.value.size != pgsize) fail("translation", kMapIova + o);
        }
        f.unmap(kMapIova, G1);
        if (f.tables() > Fixture::Table::kCacheTables) fail("more cached than the cache's bound", f.tables());
        f.trim();
        if (f.tables() != 0) fail("tables left after unmap and trim", f.tables());
    }
    f.map_scattered();
    for (uint64_t iova : f.scattered) {
        auto r = f.pt->lookup(iova);
        if (!r.ok() || r.value.pa != kMapPa + iova % G1 || r.value.size != K4) fail("scattered translation", iova);
    }
    f.unmap_scattered();
    // Held for reuse: the cache, and the parked leaf tables with the walks above them.
    if (f.tables() > Fixture::Table::kCacheTables + 3 * Fixture::Table::kParkedTables)
        fail("more held than the cache's and the parked set's bounds", f.tables());
    f.trim();
    if (f.tables() != 0) fail("tables left after scattered unmap and trim", f.tables());
    for (const HotCase& h : kHotCases) {  // each layout translates, and leaves only the kept page's walk
        f.keep(h);
        for (int k = 0; k < 3; k++) f.pair(h.iova, h.size);
        Gather g;
        if (!f.pt->map(h.iova, kMapPa, h.size, Prot{}, g).ok()) fail("hot map", h.iova);
        for (uint64_t o = 0; o < h.size; o += K4)
            if (f.pt->lookup(h.iova + o).value.pa != kMapPa + o) fail("hot translation", h.iova + o);
        f.unmap(h.iova, h.size);
        f.unkeep(h);
        f.trim();
        if (f.tables() != 0) fail("tables left after a hot layout", f.tables());
    }
}

}  // namespace

int main(int argc, char** argv) {
    self_check();
    // Five repetitions and their median unless told otherwise on the command line.
    std::vector<char*> args(argv, argv + argc);
    static char reps[] = "--benchmark_repetitions=5", aggr[] = "--benchmark_report_aggregates_only=true";
    if (argc == 1) {
        args.push_back(reps);
        args.push_back(aggr);
    }
    int n = static_cast<int>(args.size());
    benchmark::Initialize(&n, args.data());
    for (const HotCase& h : kHotCases)
        benchmark::RegisterBenchmark((std::string("hot/") + h.name).c_str(), hot_pair, &h)->Iterations(1000000);
    Collect c;
    benchmark::RunSpecifiedBenchmarks(&c);
    summary(c);
    benchmark::Shutdown();
    return 0;
}
