// moat-dt dom0less: the dom0less guests a host tree describes, read by the same parser the
// image runs (xen-compat/dom0less.hpp), and optionally the device tree each Linux guest gets.
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "tools/dt/cli.hpp"
#include "xen-compat/dom0less.hpp"
#include "xen-compat/dom0less_partial.hpp"

namespace moat::tool {

const char* const kDom0lessHelp =
    "usage: moat-dt dom0less HOST.dtb [--image ADDR,SIZE] [--dtb-at ADDR] [--pool SIZE] [--cpus N] [--guest-dtb DIR]\n"
    "                        [--module ADDR=FILE]...\n"
    "\n"
    "Reads the guests HOST.dtb's /chosen describes in Xen's dom0less binding (`xen,domain` nodes with\n"
    "memory, cpus, vpl011, moat,ram-base and multiboot,kernel / ramdisk / device-tree modules) as moat\n"
    "reads them at boot, and prints each guest or, for a guest moat would not start, every problem\n"
    "(node and property). Modules are checked against the tree's RAM, its reserved memory, moat's image\n"
    "and the tree itself when their addresses are given, and against each other.\n"
    "\n"
    "  --image ADDR,SIZE   where moat's image will be (e.g. 0x40200000,0x200000)\n"
    "  --dtb-at ADDR       where the boot loader will put HOST.dtb (its size is the file's)\n"
    "  --pool SIZE         memory for the guests' RAM (default: the tree's RAM minus what is reserved\n"
    "                      and the modules); a number of bytes, or with K, M or G\n"
    "  --cpus N            the most vCPUs a guest may have (default 8, the image's limit: vCPUs run\n"
    "                      on moat's CPUs as it schedules them, so a guest may have more than the tree)\n"
    "  --guest-dtb DIR     write DIR/<guest>.dtb: the tree each guest boots with (the kernel taken as\n"
    "                      an Image with text_offset 0 and its module's size)\n"
    "  --module ADDR=FILE  the file a loader puts at ADDR: a guest's multiboot,device-tree module there is\n"
    "                      read as Xen's partial tree and checked as moat checks it before looking at\n"
    "                      the host (xen,reg, xen,path, interrupts; the host side is checked at boot),\n"
    "                      and its /passthrough copied into the --guest-dtb tree\n"
    "\n"
    "exit status: 0 every guest accepted, 1 a guest refused, 2 unusable input or usage error\n";

namespace {

bool number(const std::string& s, uint64_t& out, bool suffix) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s.c_str(), &end, 0);
    if (errno || end == s.c_str()) return false;
    unsigned shift = 0;
    if (suffix && *end) {
        switch (*end) {
        case 'K': case 'k': shift = 10; break;
        case 'M': case 'm': shift = 20; break;
        case 'G': case 'g': shift = 30; break;
        default: return false;
        }
        end++;
    }
    if (*end || (shift && v > (~0ull >> shift))) return false;
    out = v << shift;
    return true;
}

int usage(const std::string& what) {
    std::fprintf(stderr, "moat-dt: %s\n\n%s", what.c_str(), kDom0lessHelp);
    return kUnusable;
}

unsigned count_cpus(const dt::Tree& t) {
    int cpus = t.find_path("/cpus");
    unsigned n = 0;
    for (int c = cpus >= 0 ? t.first_subnode(cpus) : -1; c >= 0; c = t.next_subnode(c)) {
        int len;
        const char* type = static_cast<const char*>(t.prop(c, "device_type", &len));
        if (type && len == 4 && std::memcmp(type, "cpu", 4) == 0 && t.available(c)) n++;
    }
    return n;
}

void print_module(const char* what, const xen::Dom0lessModule& m) {
    if (m.present) std::printf("  %-12s host 0x%010llx + 0x%llx\n", what, static_cast<unsigned long long>(m.addr),
                               static_cast<unsigned long long>(m.size));
}

}  // namespace

int cmd_dom0less(int argc, char** argv) {
    std::vector<std::string> pos;
    std::string image, dtb_at, pool, cpus, guest_dir;
    std::vector<std::pair<uint64_t, std::string>> modules;
    for (int i = 0; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&](std::string& dst) {
            if (i + 1 >= argc) return false;
            dst = argv[++i];
            return true;
        };
        if (a == "-h" || a == "--help") return std::fputs(kDom0lessHelp, stdout), kOk;
        else if (a == "--image") { if (!value(image)) return usage(a + " needs ADDR,SIZE"); }
        else if (a == "--dtb-at") { if (!value(dtb_at)) return usage(a + " needs an address"); }
        else if (a == "--pool") { if (!value(pool)) return usage(a + " needs a size"); }
        else if (a == "--cpus") { if (!value(cpus)) return usage(a + " needs a count"); }
        else if (a == "--guest-dtb") { if (!value(guest_dir)) return usage(a + " needs a directory"); }
        else if (a == "--module") {
            std::string v;
            uint64_t at;
            size_t eq;
            if (!value(v) || (eq = v.find('=')) == std::string::npos || !number(v.substr(0, eq), at, false))
                return usage(a + " needs ADDR=FILE");
            modules.emplace_back(at, v.substr(eq + 1));
        }
        else if (a.size() > 1 && a[0] == '-') return usage("unknown option '" + a + "'");
        else pos.push_back(a);
    }
    if (pos.size() != 1) return usage("dom0less needs one HOST.dtb");
    HostTree h(pos[0]);
    if (!h.ok) return kUnusable;

    MemRange img{0, 0}, dtb{0, 0};
    if (!image.empty()) {
        size_t comma = image.find(',');
        if (comma == std::string::npos || !number(image.substr(0, comma), img.base, false) ||
            !number(image.substr(comma + 1), img.size, true))
            return usage("--image needs ADDR,SIZE (e.g. 0x40200000,2M)");
    }
    if (!dtb_at.empty()) {
        if (!number(dtb_at, dtb.base, false)) return usage("--dtb-at needs an address");
        dtb.size = h.size;
    }
    auto plan = std::make_unique<MemoryPlan>();
    if (plan_memory(h.tree, img, dtb, *plan) != Status::ok) {
        std::fprintf(stderr, "moat-dt: %s: %s\n", h.file.c_str(), h.tree.error());
        return kUnusable;
    }
    unsigned tree_cpus = count_cpus(h.tree), ncpus = xen::kDom0lessMaxVcpus;
    if (!cpus.empty()) {
        uint64_t n;
        if (!number(cpus, n, false) || n == 0 || n > xen::kDom0lessMaxVcpus)
            return usage("--cpus needs a count (1.." + std::to_string(xen::kDom0lessMaxVcpus) + ")");
        ncpus = static_cast<unsigned>(n);
    }
    uint64_t pool_bytes = plan->free_bytes();
    bool pool_given = !pool.empty();
    if (pool_given && !number(pool, pool_bytes, true)) return usage("--pool needs a size (bytes, or with K, M or G)");

    auto cfg = std::make_unique<xen::Dom0lessConfig>();
    FileSink err(stderr), out(stdout);
    // The modules take their share of the free memory: read once for their ranges, then with them
    // out of the pool (as the image fills its pool only after keeping the modules out of it).
    xen::Dom0lessLimits lim = xen::dom0less_limits(*plan, ~0ull, ncpus);
    StringSink scratch;
    if (!pool_given) {
        (void)xen::parse_dom0less(h.tree, lim, *cfg, scratch);
        MemRange mods[3 * xen::kDom0lessMaxGuests];
        unsigned n = xen::dom0less_module_ranges(*cfg, mods, 3 * xen::kDom0lessMaxGuests);
        for (unsigned i = 0; i < n; i++) pool_bytes -= min(pool_bytes, mods[i].size);
    }
    lim.pool_bytes = pool_bytes;
    Status st = xen::parse_dom0less(h.tree, lim, *cfg, err, &out);

    auto pt = std::make_unique<xen::PartialTree>();
    std::string partial;
    unsigned refused = 0;
    for (unsigned i = 0; i < cfg->nguests; i++) {
        const xen::Dom0lessGuest& g = cfg->guests[i];
        bool have_pt = false, bad_pt = false;
        for (const auto& m : modules) {
            if (!g.dtb.present || m.first != g.dtb.addr) continue;
            if (!read_file(m.second, partial)) return kUnusable;
            if (partial.size() > g.dtb.size) {
                std::fprintf(stderr, "moat-dt: %s: %zu bytes, more than %s's device-tree module (0x%llx bytes)\n",
                             m.second.c_str(), partial.size(), g.path, static_cast<unsigned long long>(g.dtb.size));
                return kUnusable;
            }
            if (xen::parse_partial_dt(g, partial.data(), partial.size(), *pt, err, &out) != Status::ok) {
                refused++;
                st = Status::invalid_argument;
                bad_pt = true;
                break;
            }
            have_pt = true;
        }
        if (bad_pt) continue;  // reported, naming the node and property
        std::printf("%s: %u vCPU%s, %llu MiB of RAM at guest 0x%llx%s\n", g.path, g.vcpus, g.vcpus == 1 ? "" : "s",
                    static_cast<unsigned long long>(g.memory / MiB), static_cast<unsigned long long>(g.ram_base),
                    g.vpl011 ? ", vpl011 console" : "");
        print_module("kernel", g.kernel);
        print_module("ramdisk", g.ramdisk);
        print_module("device-tree", g.dtb);
        for (unsigned d = 0; have_pt && d < pt->ndevices; d++)
            std::printf("  %-12s %s -> host %s%s\n", "passthrough", pt->dev[d].name, pt->dev[d].host_path,
                        pt->dev[d].force ? " (xen,force-assign-without-iommu)" : "");
        if (g.bootargs[0]) std::printf("  %-12s \"%s\"\n", "bootargs", g.bootargs);
        if (g.resv_size)
            std::printf("  %-12s guest 0x%llx + 0x%llx (no-map to the guest's kernel)\n", "reserved",
                        static_cast<unsigned long long>(g.resv_base),
                        static_cast<unsigned long long>(g.resv_size));
        if (guest_dir.empty()) continue;
        xen::GuestPlacement place;
        if (xen::place_guest_modules(g, 0, g.kernel.size, place, err) != Status::ok) return kProblems;
        std::vector<uint64_t> buf(8192);
        size_t size = 0;
        if (xen::build_linux_guest_dt(g, place, buf.data(), buf.size() * 8, size, err, nullptr, have_pt ? pt.get() : nullptr) !=
            Status::ok)
            return kProblems;
        std::string path = guest_dir + "/" + g.name + ".dtb";
        if (!write_file(path, buf.data(), size)) return kUnusable;
        std::printf("  %-12s %s (%zu bytes; at guest 0x%llx, initrd at 0x%llx)\n", "guest tree", path.c_str(), size,
                    static_cast<unsigned long long>(place.dtb), static_cast<unsigned long long>(place.initrd));
    }
    std::printf("%s: %u guest%s accepted, %u refused (pool %llu MiB; up to %u vCPUs a guest; the tree has %u CPU%s)\n",
                h.file.c_str(), cfg->nguests - refused, cfg->nguests - refused == 1 ? "" : "s", cfg->nskipped + refused,
                static_cast<unsigned long long>(pool_bytes / MiB), ncpus, tree_cpus, tree_cpus == 1 ? "" : "s");
    return st == Status::ok ? kOk : kProblems;
}

}  // namespace moat::tool
