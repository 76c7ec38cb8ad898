// libFuzzer target: moat-dt's guest builder. Arbitrary bytes as a guest configuration file,
// through the parser, completion and the guest DTB writer; a tree that is written must open
// cleanly again and match its description. Nothing may crash, hang or read out of bounds.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/fdt.hpp"
#include "xen-compat/guest_config.hpp"
#include "xen-compat/guest_dt.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace moat;

using fuzz::NullSink;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<char> text(data, data + size);  // exactly `size` bytes: ASan sees any over-read
    NullSink err;
    static xen::GuestDesc g;
    g = xen::GuestDesc{};
    if (xen::parse_guest_config(text.data(), text.size(), "fuzz.cfg", g, err) != Status::ok) return 0;
    static uint8_t out[256 * 1024];
    size_t n = 0;
    if (xen::build_guest_dt(g, nullptr, out, sizeof out, n, err) != Status::ok) return 0;
    dt::Tree t;
    if (t.open(out, n) != Status::ok) abort();                   // what moat writes, moat can read
    if (xen::verify_guest_dt(t, g, nullptr, err) != 0) abort();  // and it says what was asked
    return 0;
}
