// moat-pv-replay: runs a text trace of PV-IOMMU sub-ops against moat's own dispatcher on the
// host, with fake guest memory (a P2M) and the SMMUv3 driver on its register model, and prints
// what each call returned and wrote back. For tests, and for people debugging a guest driver:
// replay what the driver did and see exactly which check refused it.
//
// Usage: moat-pv-replay [--quiet] TRACE    ("-" reads standard input)
// Exit status: 0 every `expect` held; 1 an expectation failed; 2 the trace itself is wrong.
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "drivers/iommu/smmu_v3.hpp"
#include "tests/models/fake_guest.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/smmu_v3_model.hpp"

using namespace moat;
using namespace moat::xen;

namespace {

constexpr uint64_t kPhysBase = 0x80000000ull;
constexpr size_t kPoolPages = 32768;  // 128 MiB of pretend physical memory
constexpr uintptr_t kSmmuBase = 0x09050000;

const char* g_file = "trace";
unsigned g_line = 0;

[[noreturn]] void bad(const std::string& what) {
    std::fprintf(stderr, "%s:%u: %s\n", g_file, g_line, what.c_str());
    std::exit(2);
}

uint64_t number(const std::string& s) {
    if (s.empty()) bad("missing number");
    char* end = nullptr;
    uint64_t v = std::strtoull(s.c_str(), &end, 0);
    std::string suffix(end);
    if (suffix == "K") v <<= 10;
    else if (suffix == "M") v <<= 20;
    else if (suffix == "G") v <<= 30;
    else if (!suffix.empty()) bad("bad number '" + s + "'");
    return v;
}

// key=value words after the command; bare words are flags.
struct Args {
    std::map<std::string, std::string> kv;
    std::vector<std::string> flags;
    std::map<std::string, bool> used;
    bool has(const std::string& k) { used[k] = true; return kv.count(k) != 0; }
    uint64_t num(const std::string& k, uint64_t def) { used[k] = true; return kv.count(k) ? number(kv[k]) : def; }
    uint64_t req(const std::string& k) {
        used[k] = true;
        if (!kv.count(k)) bad("missing " + k + "=");
        return number(kv[k]);
    }
    bool flag(const std::string& f) {
        for (auto& x : flags)
            if (x == f) { used[f] = true; return true; }
        return false;
    }
    void done() {
        for (auto& [k, v] : kv)
            if (!used[k]) bad("unknown key '" + k + "'");
        for (auto& f : flags)
            if (!used[f]) bad("unknown word '" + f + "'");
    }
};

Args parse_args(std::istringstream& in) {
    Args a;
    std::string w;
    while (in >> w) {
        if (w[0] == '#') break;
        auto eq = w.find('=');
        if (eq == std::string::npos) a.flags.push_back(w);
        else a.kv[w.substr(0, eq)] = w.substr(eq + 1);
    }
    return a;
}

// "00:01.0" or "0000:00:01.0"
void parse_bdf(const std::string& s, uint16_t& seg, uint8_t& bus, uint8_t& devfn) {
    unsigned a = 0, b = 0, d = 0, f = 0;
    if (std::sscanf(s.c_str(), "%x:%x:%x.%u", &a, &b, &d, &f) == 4) seg = static_cast<uint16_t>(a);
    else if (std::sscanf(s.c_str(), "%x:%x.%u", &b, &d, &f) == 3) seg = 0;
    else bad("bad PCI address '" + s + "' (want BB:DD.F)");
    if (b > 255 || d > 31 || f > 7) bad("PCI address out of range: " + s);
    bus = static_cast<uint8_t>(b);
    devfn = static_cast<uint8_t>(d << 3 | f);
}

struct Domain {
    std::unique_ptr<model::FakeGuest> mem;
    std::unique_ptr<PvIommuGuest> pv;
};

struct World {
    model::HostPool mem{kPoolPages, kPhysBase, 2 * MiB};
    std::unique_ptr<PagePool>& pool = mem.pool;
    std::unique_ptr<model::PoolPhysMem> phys;
    std::unique_ptr<model::SmmuV3Model> model;
    std::unique_ptr<SmmuV3> smmu;
    PvIommuHost host;
    std::map<unsigned, Domain> doms;
    FaultLog faults;
    PvIommuConfig cfg;
    unsigned failures = 0;
    bool quiet = false;
    long last = 0;

    World() {
        phys = std::make_unique<model::PoolPhysMem>(*pool);
        model = std::make_unique<model::SmmuV3Model>(*phys, model::SmmuV3Model::Features{});
        mmio::attach(kSmmuBase, model::SmmuV3Model::kRegSize, model.get());
        smmu = std::make_unique<SmmuV3>(*pool);
        SmmuV3::Config c;
        c.base = kSmmuBase;
        c.size = model::SmmuV3Model::kRegSize;
        c.name = "smmuv3-model";
        c.max_sid = 0xffff;
        if (smmu->probe(c) != Status::ok) bad("the SMMUv3 model did not probe");
        Result<iopt::Format> f = smmu->domain_format(DomainUse::dma, cfg.format.ias);
        if (!f.ok()) bad("the SMMUv3 model offers no table format for DMA contexts");
        cfg.format = f.value;
    }
    ~World() {
        doms.clear();
        mmio::detach(model.get());
    }
    Domain& dom(uint64_t id) {
        auto it = doms.find(static_cast<unsigned>(id));
        if (it == doms.end()) bad("no guest " + std::to_string(id) + " (declare it with 'guest')");
        return it->second;
    }
    void out(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
        if (quiet) return;
        va_list ap;
        va_start(ap, fmt);
        std::printf("%s:%u: ", g_file, g_line);
        std::vprintf(fmt, ap);
        va_end(ap);
    }
};

// Places the sub-op's struct in the caller's RAM, runs the call (again while preempted, as a
// guest does after a continuation) and reads the struct back.
template <class T>
long run(World& w, Domain& caller, IommuSubop op, T& s, unsigned& rounds, uint64_t gpa = 0) {
    if (!gpa) gpa = (caller.mem->first_gfn() << kPageShift) + 0x100;
    if (!caller.mem->write(gpa, &s, sizeof s)) bad("the struct does not fit the guest's RAM");
    CallResult r{0, true};
    for (rounds = 0; r.preempted && rounds < 1000000; rounds++)
        r = iommu_op(w.host, *caller.pv, static_cast<uint64_t>(op), gpa);
    (void)caller.mem->read(gpa, &s, sizeof s);
    return r.ret;
}

uint32_t map_flags(Args& a) {
    std::string f = a.kv.count("flags") ? a.kv["flags"] : "rw";
    a.used["flags"] = true;
    uint32_t v = 0;
    for (char c : f) {
        if (c == 'r') v |= mapf::kReadable;
        else if (c == 'w') v |= mapf::kWriteable;
        else if (c == 'c') v |= mapf::kCache;
        else if (c != '-') bad("flags: r, w, c or '-' only");
    }
    return v;
}

void call(World& w, std::istringstream& in) {
    std::string who, name;
    in >> who >> name;
    if (name.empty()) bad("call DOMID SUBOP [key=value...]");
    Domain& d = w.dom(number(who));
    Args a = parse_args(in);
    unsigned rounds = 0;
    long ret = 0;
    char detail[256] = "";
    if (name == "query_capabilities") {
        PvIommuCapabilities s{};
        ret = run(w, d, IommuSubop::query_capabilities, s, rounds);
        std::snprintf(detail, sizeof detail, "max_iova=0x%" PRIx64 " pgsize_mask=0x%x cap_flags=0x%x max_ctx=%u", s.max_iova_addr,
                      s.pgsize_mask, s.cap_flags, s.max_ctx_no);
    } else if (name == "init") {
        PvIommuInit s{static_cast<uint32_t>(a.num("max_ctx", 0)), static_cast<uint32_t>(a.num("arena_order", 0))};
        ret = run(w, d, IommuSubop::init, s, rounds);
    } else if (name == "alloc_context") {
        PvIommuAllocContext s{0, {}, static_cast<uint32_t>((a.flag("identity") ? kAllocIdentity : 0) | a.num("alloc_flags", 0))};
        ret = run(w, d, IommuSubop::alloc_context, s, rounds);
        std::snprintf(detail, sizeof detail, "ctx=%u", s.ctx_no);
    } else if (name == "free_context") {
        PvIommuFreeContext s{static_cast<uint16_t>(a.req("ctx")), {},
                             static_cast<uint32_t>((a.flag("reattach") ? kFreeReattachDefault : 0) | a.num("free_flags", 0))};
        ret = run(w, d, IommuSubop::free_context, s, rounds);
    } else if (name == "reattach_device") {
        PvIommuReattachDevice s{};
        s.ctx_no = static_cast<uint16_t>(a.req("ctx"));
        a.used["dev"] = true;
        if (!a.kv.count("dev")) bad("missing dev=BB:DD.F");
        parse_bdf(a.kv["dev"], s.seg, s.bus, s.devfn);
        s.pasid = static_cast<uint32_t>(a.num("pasid", 0));
        ret = run(w, d, IommuSubop::reattach_device, s, rounds);
    } else if (name == "map_pages") {
        PvIommuMapPages s{};
        s.ctx_no = static_cast<uint16_t>(a.req("ctx"));
        s.gfn = a.req("gfn");
        s.dfn = a.req("dfn");
        s.nr_pages = a.num("nr", 1);
        s.pgsize = a.num("pgsize", 4096);
        s.map_flags = map_flags(a);
        ret = run(w, d, IommuSubop::map_pages, s, rounds);
        std::snprintf(detail, sizeof detail, "mapped=%" PRIu64 " left=%" PRIu64 " gfn=0x%" PRIx64 " dfn=0x%" PRIx64, s.mapped,
                      s.nr_pages, s.gfn, s.dfn);
    } else if (name == "unmap_pages") {
        PvIommuUnmapPages s{};
        s.ctx_no = static_cast<uint16_t>(a.req("ctx"));
        s.dfn = a.req("dfn");
        s.nr_pages = a.num("nr", 1);
        s.pgsize = a.num("pgsize", 4096);
        ret = run(w, d, IommuSubop::unmap_pages, s, rounds);
        std::snprintf(detail, sizeof detail, "unmapped=%" PRIu64 " left=%" PRIu64 " dfn=0x%" PRIx64, s.unmapped, s.nr_pages, s.dfn);
    } else if (name == "raw") {
        // Any sub-op number, with the struct pointer given as a guest address (or the scratch area).
        uint64_t subop = a.req("subop");
        uint64_t gpa = a.num("arg", (d.mem->first_gfn() << kPageShift) + 0x100);
        CallResult r = iommu_op(w.host, *d.pv, subop, gpa);
        ret = r.ret;
        rounds = 1;
    } else {
        bad("unknown sub-op '" + name + "'");
    }
    a.done();
    w.last = ret;
    std::string cont = rounds > 1 ? " (continued " + std::to_string(rounds - 1) + "x)" : "";
    w.out("%s -> %ld%s%s%s\n", name.c_str(), ret, detail[0] ? " " : "", detail, cont.c_str());
    (void)w.smmu->poll_faults(w.faults);  // drained here; `dma` lines report the faults they cause
}

void dma(World& w, std::istringstream& in) {
    std::string who, bdf, dir;
    in >> who >> bdf >> dir;
    Domain& d = w.dom(number(who));
    Args a = parse_args(in);
    uint16_t seg;
    uint8_t bus, devfn;
    parse_bdf(bdf, seg, bus, devfn);
    PvDevice* dev = d.pv->device(seg, bus, devfn);
    if (!dev) bad("guest " + who + " has no device " + bdf);
    uint64_t addr = a.req("addr");
    size_t len = a.num("len", 16);
    a.done();
    std::vector<uint8_t> buf(len, 0xa5);
    model::SmmuV3Model::Dma r = dir == "write" ? w.model->dma_write(dev->sid, addr, buf.data(), len)
                              : dir == "read"  ? w.model->dma_read(dev->sid, addr, buf.data(), len)
                                               : (bad("dma DOMID BB:DD.F read|write addr=... [len=...]"), model::SmmuV3Model::Dma{});
    uint64_t before = w.faults.total();
    w.smmu->poll_faults(w.faults);
    w.last = r.ok ? 0 : -1;
    if (r.ok) {
        w.out("dma %s 0x%" PRIx64 " (%zu bytes) -> ok at PA 0x%" PRIx64 "\n", dir.c_str(), addr, len, r.pa);
    } else if (w.faults.total() > before) {
        const FaultRecord& f = w.faults.at(w.faults.size() - static_cast<unsigned>(w.faults.total() - before));
        w.out("dma %s 0x%" PRIx64 " -> blocked: %s at 0x%" PRIx64 " (%s), %" PRIu64 " event(s)\n", dir.c_str(), addr,
              to_string(f.kind), f.address, f.detail, w.faults.total() - before);
    } else {
        w.out("dma %s 0x%" PRIx64 " -> blocked silently (stream aborts)\n", dir.c_str(), addr);
    }
}

}  // namespace

int main(int argc, char** argv) {
    World w;
    const char* path = nullptr;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--quiet")) w.quiet = true;
        else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
            std::printf("usage: moat-pv-replay [--quiet] TRACE\n\n"
                        "Runs PV-IOMMU sub-ops from TRACE against moat's dispatcher, with fake guest RAM and the\n"
                        "SMMUv3 driver on its register model. One command per line, '#' starts a comment:\n"
                        "  guest DOMID ram=SIZE [privileged]        a guest with SIZE of RAM at 0x40000000\n"
                        "  device DOMID BB:DD.F sid=N               give it a PCI device (stream N), in context 0\n"
                        "  budget PAGES                             4 KiB pages of work per call before a continuation\n"
                        "  call DOMID SUBOP key=value...            query_capabilities | init [max_ctx=] |\n"
                        "        alloc_context [identity] | free_context ctx= [reattach] | reattach_device ctx= dev= |\n"
                        "        map_pages ctx= gfn= dfn= [nr=] [pgsize=] [flags=rwc] | unmap_pages ctx= dfn= [nr=] [pgsize=] |\n"
                        "        raw subop=N [arg=GPA]\n"
                        "  dma DOMID BB:DD.F read|write addr=IOVA [len=N]   a DMA by the device, through the model\n"
                        "  expect VALUE                             the previous result must be VALUE (dma: 0 ok, -1 blocked)\n"
                        "Exit status: 0 all expectations held, 1 one did not, 2 the trace is malformed.\n");
            return 0;
        } else path = argv[i];
    }
    if (!path) {
        std::fprintf(stderr, "usage: moat-pv-replay [--quiet] TRACE (see --help)\n");
        return 2;
    }
    std::ifstream file;
    std::istream* in = &std::cin;
    if (std::strcmp(path, "-")) {
        file.open(path);
        if (!file) {
            std::fprintf(stderr, "moat-pv-replay: cannot read %s\n", path);
            return 2;
        }
        in = &file;
        g_file = path;
    }
    std::string line;
    while (std::getline(*in, line)) {
        g_line++;
        std::istringstream ls(line);
        std::string cmd;
        if (!(ls >> cmd) || cmd[0] == '#') continue;
        if (cmd == "guest") {
            std::string id;
            ls >> id;
            Args a = parse_args(ls);
            uint64_t ram = a.req("ram");
            bool priv = a.flag("privileged");
            a.done();
            if (ram == 0 || ram % (2 * MiB) || ram > 64 * MiB) bad("ram must be a multiple of 2M, at most 64M");
            unsigned dom = static_cast<unsigned>(number(id));
            if (dom > 0x7fef || w.doms.count(dom)) bad("guest " + id + ": bad or duplicate domain id");
            Domain& d = w.doms[dom];
            d.mem = std::make_unique<model::FakeGuest>(*w.pool, ram >> kPageShift);
            if (!d.mem->ok()) bad("out of pretend physical memory");
            d.pv = std::make_unique<PvIommuGuest>(static_cast<uint16_t>(dom), priv, *d.mem, *w.pool, w.cfg);
            if (d.pv->init_default(d.mem->first_gfn(), d.mem->pages()) != Status::ok || w.host.add(*d.pv) != Status::ok)
                bad("guest " + id + " could not be created");
        } else if (cmd == "device") {
            std::string id, bdf;
            ls >> id >> bdf;
            Domain& d = w.dom(number(id));
            Args a = parse_args(ls);
            uint64_t sid = a.req("sid");
            a.done();
            uint16_t seg;
            uint8_t bus, devfn;
            parse_bdf(bdf, seg, bus, devfn);
            Status st = d.pv->assign(seg, bus, devfn, *w.smmu, static_cast<StreamId>(sid));
            if (st != Status::ok) bad(std::string("device ") + bdf + ": " + to_string(st));
        } else if (cmd == "budget") {
            std::string n;
            ls >> n;
            w.cfg.budget_pages = number(n);
            if (!w.doms.empty()) bad("budget must come before the first guest");
        } else if (cmd == "call") {
            call(w, ls);
        } else if (cmd == "dma") {
            dma(w, ls);
        } else if (cmd == "expect") {
            std::string v;
            ls >> v;
            long want = std::strtol(v.c_str(), nullptr, 0);
            if (v.empty()) bad("expect VALUE");
            if (w.last != want) {
                std::printf("%s:%u: FAILED: expected %ld, got %ld\n", g_file, g_line, want, w.last);
                w.failures++;
            }
        } else {
            bad("unknown command '" + cmd + "'");
        }
    }
    std::printf("%s: %u line(s), %u expectation(s) failed; %" PRIu64 " DMA fault(s); pool %zu pages in use\n", g_file, g_line,
                w.failures, w.faults.total(), w.pool->used_pages());
    return w.failures ? 1 : 0;
}
