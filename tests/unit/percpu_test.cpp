// PerCpu over arch::cpu_id(): one slot per CPU, reachable from another CPU with on().
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "common/percpu.hpp"

using namespace moat;

namespace {

struct Counters {
    uint64_t events;
    uint32_t last;
};
constinit PerCpu<Counters> g_counters;  // constant-initialized: no constructor to run at boot

class PerCpuTest : public ::testing::Test {
protected:
    void TearDown() override { arch::host::set_cpu_id(0); }
};

TEST_F(PerCpuTest, EachCpuHasItsOwnSlot) {
    PerCpu<int> v;
    arch::host::set_cpu_id(0);
    v.here() = 11;
    arch::host::set_cpu_id(3);
    EXPECT_EQ(v.here(), 0);
    v.here() = 33;
    EXPECT_NE(&v.here(), &v.on(0));
    EXPECT_EQ(&v.here(), &v.on(3));
    EXPECT_EQ(v.on(0), 11);  // another CPU's slot, from here
    arch::host::set_cpu_id(0);
    EXPECT_EQ(v.here(), 11);
    EXPECT_EQ(v.on(3), 33);
}

TEST_F(PerCpuTest, SlotsAreOnSeparateCacheLines) {
    for (unsigned i = 0; i < PerCpu<Counters>::size(); i++) {
        auto a = reinterpret_cast<uintptr_t>(&g_counters.on(i));
        EXPECT_EQ(a % arch::kCacheLine, 0u) << "cpu " << i;
        if (i) {
            EXPECT_GE(a - reinterpret_cast<uintptr_t>(&g_counters.on(i - 1)), arch::kCacheLine);
        }
    }
}

TEST_F(PerCpuTest, ThreadsAsCpusCountIntoTheirOwnSlots) {
    std::vector<std::thread> cpus;
    for (unsigned cpu = 0; cpu < 4; cpu++)
        cpus.emplace_back([cpu] {
            arch::host::set_cpu_id(cpu);
            for (unsigned i = 0; i <= cpu; i++) g_counters.here().events++;
            g_counters.here().last = cpu;
        });
    for (auto& t : cpus) t.join();
    for (unsigned cpu = 0; cpu < 4; cpu++) {
        EXPECT_EQ(g_counters.on(cpu).events, cpu + 1u);
        EXPECT_EQ(g_counters.on(cpu).last, cpu);
    }
    EXPECT_EQ(g_counters.on(4).events, 0u);
}

TEST_F(PerCpuTest, CpuInitRefusesIdsBeyondKMaxCpus) {
    EXPECT_EQ(arch::cpu_init(2), Status::ok);
    EXPECT_EQ(arch::cpu_id(), 2u);
    EXPECT_EQ(arch::cpu_init(arch::kMaxCpus), Status::out_of_range);
    EXPECT_EQ(arch::cpu_id(), 2u);
    unsigned other = 99;
    std::thread([&] { other = arch::cpu_id(); }).join();
    EXPECT_EQ(other, 0u);  // a new thread starts as CPU 0
}

}  // namespace
