// IrqSpinlock: a handler never runs inside a section on the CPU that holds it, and the lock
// still excludes other CPUs.
#include <gtest/gtest.h>

#include <thread>

#include "arch/cpu.hpp"
#include "arch/irq.hpp"
#include "common/lock.hpp"

using namespace moat;
using arch::HostIrqController;

namespace {

struct Shared {
    HostIrqController* c;
    IrqSpinlock lock;
    bool in_section = false;
    int calls = 0;
    bool ran_inside_section = false;
};

// Takes the lock its thread-context code also takes: the reason IrqSpinlock exists.
void handler(void* ctx) {
    auto* s = static_cast<Shared*>(ctx);
    if (s->in_section) {  // the bug under test: report it rather than deadlock on the lock
        s->ran_inside_section = true;
        s->c->eoi(48);
        return;
    }
    {
        IrqLockGuard g(s->lock);
        s->calls++;
    }
    EXPECT_TRUE(arch::irqs_masked());  // the guard gave back the handler's masked state
    s->c->eoi(48);
}

TEST(IrqSpinlock, RaiseInsideSectionIsTakenAtUnlock) {
    HostIrqController c;
    Shared s{&c};
    ASSERT_EQ(c.request(48, Trigger::edge_rising, 0, handler, &s), Status::ok);
    c.enable(48);
    {
        IrqLockGuard g(s.lock);
        s.in_section = true;
        EXPECT_TRUE(arch::irqs_masked());
        c.raise(48);
        EXPECT_EQ(s.calls, 0);
        EXPECT_TRUE(c.pending(48));
        s.in_section = false;
    }
    EXPECT_FALSE(arch::irqs_masked());
    EXPECT_EQ(s.calls, 1);
    EXPECT_FALSE(s.ran_inside_section);
}

TEST(IrqSpinlock, NestedSectionsUnmaskOnlyAtTheOutermost) {
    HostIrqController c;
    Shared s{&c};
    IrqSpinlock outer;
    ASSERT_EQ(c.request(48, Trigger::edge_rising, 0, handler, &s), Status::ok);
    c.enable(48);
    outer.lock();
    s.in_section = true;
    {
        IrqLockGuard g(s.lock);
        c.raise(48);
    }
    EXPECT_TRUE(arch::irqs_masked());
    EXPECT_EQ(s.calls, 0);
    s.in_section = false;
    outer.unlock();
    EXPECT_EQ(s.calls, 1);
    EXPECT_FALSE(s.ran_inside_section);
}

TEST(IrqSpinlock, PlainSpinlockLeavesInterruptsAlone) {
    HostIrqController c;
    Shared s{&c};
    Spinlock plain;
    ASSERT_EQ(c.request(48, Trigger::edge_rising, 0, handler, &s), Status::ok);
    c.enable(48);
    LockGuard g(plain);
    EXPECT_FALSE(arch::irqs_masked());
    c.raise(48);
    EXPECT_EQ(s.calls, 1);  // taken at once: why a handler must never share a plain Spinlock
}

TEST(IrqSpinlock, MaskIsPerCpu) {
    IrqSpinlock l;
    IrqLockGuard g(l);
    bool other_masked = true;
    std::thread([&] { other_masked = arch::irqs_masked(); }).join();
    EXPECT_TRUE(arch::irqs_masked());
    EXPECT_FALSE(other_masked);
}

// Two CPUs incrementing a plain counter: every increment survives only if the lock excludes.
// `make tsan-unit` runs this under ThreadSanitizer, which also reports any unordered access.
template <class Lock, class Guard>
void count_on_two_cpus() {
    Lock l;
    uint64_t counter = 0;
    constexpr int kRounds = 100000;
    auto work = [&](unsigned cpu) {
        arch::host::set_cpu_id(cpu);
        for (int i = 0; i < kRounds; i++) {
            Guard g(l);
            counter++;
        }
    };
    std::thread a(work, 0u), b(work, 1u);
    a.join();
    b.join();
    EXPECT_EQ(counter, 2u * kRounds);
}

TEST(IrqSpinlock, ExcludesAnotherCpu) { count_on_two_cpus<IrqSpinlock, IrqLockGuard>(); }
TEST(Spinlock, ExcludesAnotherCpu) { count_on_two_cpus<Spinlock, LockGuard>(); }

}  // namespace
