// PSCI 1.1 and the SMCCC 1.1 discovery calls for a guest, as its tree advertises them (`psci`
// node, method "hvc"): every argument checked before anything changes, the vCPUs' power states
// kept here, and what the hypervisor must do next returned as an action (start a vCPU, stop the
// caller, end the guest). Portable and host-tested; the arch only moves registers.
// Function ids and return codes: docs/hardware.md §9.4.
#pragma once
#include "common/types.hpp"

namespace moat::hyp {

namespace psci {
constexpr uint32_t kVersion = 0x84000000, kCpuSuspend = 0x84000001, kCpuSuspend64 = 0xc4000001, kCpuOff = 0x84000002,
                   kCpuOn = 0x84000003, kCpuOn64 = 0xc4000003, kAffinityInfo = 0x84000004,
                   kAffinityInfo64 = 0xc4000004, kMigrateInfoType = 0x84000006, kSystemOff = 0x84000008,
                   kSystemReset = 0x84000009, kFeatures = 0x8400000a;
constexpr uint32_t kSmcccVersion = 0x80000000, kSmcccArchFeatures = 0x80000001;
constexpr uint32_t kVersion11 = 0x00010001;  // PSCI 1.1; SMCCC 1.1 has the same encoding
constexpr uint32_t kMigrateNotRequired = 2;  // MIGRATE_INFO_TYPE: no Trusted OS to migrate
enum Ret : int32_t {
    kSuccess = 0, kNotSupported = -1, kInvalidParameters = -2, kDenied = -3, kAlreadyOn = -4, kOnPending = -5,
    kInternalFailure = -6, kNotPresent = -7, kDisabled = -8, kInvalidAddress = -9,
};
enum Affinity : uint32_t { kOn = 0, kOff = 1, kOnPendingState = 2 };
}  // namespace psci

class VPsci {
public:
    static constexpr unsigned kMaxVcpus = 8;
    enum class Action : uint8_t { resume, start_vcpu, stop_caller, system_off, system_reset };
    struct Result {
        uint64_t x0 = 0;                 // what the caller's x0 becomes
        Action action = Action::resume;
        unsigned target = 0;             // start_vcpu: which
        uint64_t entry = 0, context = 0; // start_vcpu: its PC and x0
    };

    // vCPU 0 starts on, the others off; `mpidr[n]` is vCPU n's affinity; an entry point must
    // lie in [ram_base, ram_base + ram_size).
    void reset(unsigned nvcpus, const uint64_t* mpidr, uint64_t ram_base, uint64_t ram_size);
    // A call through hvc #0 (or smc #0) by vCPU `caller` with x0..x3.
    Result call(unsigned caller, uint64_t x0, uint64_t x1, uint64_t x2, uint64_t x3);
    bool on(unsigned vcpu) const { return vcpu < nvcpus_ && on_[vcpu]; }
    unsigned vcpus_on() const;

private:
    int target_of(uint64_t mpidr) const;
    unsigned nvcpus_ = 0;
    uint64_t mpidr_[kMaxVcpus] = {};
    bool on_[kMaxVcpus] = {};
    uint64_t ram_base_ = 0, ram_size_ = 0;
};

}  // namespace moat::hyp
