#include "hyp/vpsci.hpp"

namespace moat::hyp {

namespace {
uint64_t ret(int32_t r) { return static_cast<uint64_t>(static_cast<int64_t>(r)); }
constexpr uint64_t kAffinityMask = 0xff00ffffffull;  // Aff3 [39:32], Aff2..Aff0 [23:0]
}  // namespace

void VPsci::reset(unsigned nvcpus, const uint64_t* mpidr, uint64_t ram_base, uint64_t ram_size) {
    nvcpus_ = min(nvcpus, kMaxVcpus);
    for (unsigned v = 0; v < kMaxVcpus; v++) {
        mpidr_[v] = v < nvcpus_ ? mpidr[v] & kAffinityMask : ~uint64_t{0};
        on_[v] = v == 0 && nvcpus_ > 0;
    }
    ram_base_ = ram_base;
    ram_size_ = ram_size;
}

unsigned VPsci::vcpus_on() const {
    unsigned n = 0;
    for (unsigned v = 0; v < nvcpus_; v++) n += on_[v];
    return n;
}

int VPsci::target_of(uint64_t mpidr) const {
    if (mpidr & ~kAffinityMask) return -1;  // bits outside the affinity fields must be zero
    for (unsigned v = 0; v < nvcpus_; v++)
        if (mpidr_[v] == mpidr) return static_cast<int>(v);
    return -1;
}

VPsci::Result VPsci::call(unsigned caller, uint64_t x0, uint64_t x1, uint64_t x2, uint64_t x3) {
    Result r;
    uint32_t fn = static_cast<uint32_t>(x0);
    bool smc32 = (fn & 0x40000000u) == 0;  // SMC32 calls take their arguments in w registers
    if (smc32) {
        x1 &= 0xffffffff;
        x2 &= 0xffffffff;
        x3 &= 0xffffffff;
    }
    if (x0 >> 32) {  // SMCCC: the function id is w0; a value with upper bits set is no known call
        r.x0 = ret(psci::kNotSupported);
        return r;
    }
    switch (fn) {
    case psci::kVersion: r.x0 = psci::kVersion11; return r;
    case psci::kMigrateInfoType: r.x0 = psci::kMigrateNotRequired; return r;
    case psci::kSmcccVersion: r.x0 = psci::kVersion11; return r;
    case psci::kSmcccArchFeatures:
        // SMCCC_ARCH_FEATURES itself is there; no firmware workaround (WORKAROUND_1/2/3) is offered.
        r.x0 = static_cast<uint32_t>(x1) == psci::kSmcccArchFeatures ? 0 : ret(psci::kNotSupported);
        return r;
    case psci::kFeatures:
        switch (static_cast<uint32_t>(x1)) {
        case psci::kVersion: case psci::kCpuOff: case psci::kCpuOn: case psci::kCpuOn64: case psci::kAffinityInfo:
        case psci::kAffinityInfo64: case psci::kMigrateInfoType: case psci::kSystemOff: case psci::kSystemReset:
        case psci::kFeatures: case psci::kSmcccVersion:
            r.x0 = 0;
            break;
        default: r.x0 = ret(psci::kNotSupported); break;  // CPU_SUSPEND, SYSTEM_SUSPEND, RESET2, ...
        }
        return r;
    case psci::kCpuOn:
    case psci::kCpuOn64: {
        int t = target_of(x1);
        if (t < 0) { r.x0 = ret(psci::kInvalidParameters); return r; }
        if (on_[t]) { r.x0 = ret(psci::kAlreadyOn); return r; }
        if (x2 < ram_base_ || x2 - ram_base_ >= ram_size_ || (x2 & 3)) { r.x0 = ret(psci::kInvalidAddress); return r; }
        on_[t] = true;
        r.x0 = ret(psci::kSuccess);
        r.action = Action::start_vcpu;
        r.target = static_cast<unsigned>(t);
        r.entry = x2;
        r.context = x3;
        return r;
    }
    case psci::kAffinityInfo:
    case psci::kAffinityInfo64: {
        int t = target_of(x1);
        if (t < 0 || x2 != 0) { r.x0 = ret(psci::kInvalidParameters); return r; }  // level 0 only: one vCPU per node
        r.x0 = on_[t] ? psci::kOn : psci::kOff;
        return r;
    }
    case psci::kCpuOff:
        if (caller >= nvcpus_) { r.x0 = ret(psci::kDenied); return r; }
        on_[caller] = false;
        r.action = Action::stop_caller;
        return r;
    case psci::kSystemOff: r.action = Action::system_off; return r;
    case psci::kSystemReset: r.action = Action::system_reset; return r;
    default: r.x0 = ret(psci::kNotSupported); return r;
    }
}

}  // namespace moat::hyp
