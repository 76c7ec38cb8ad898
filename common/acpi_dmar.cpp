#include "common/acpi_dmar.hpp"

#include <stdarg.h>

namespace moat::acpi {

namespace {

uint64_t le(const uint8_t* p, unsigned bytes) {
    uint64_t v = 0;
    for (unsigned i = bytes; i-- > 0;) v = v << 8 | p[i];
    return v;
}

// Minimum length of each structure type: its fixed fields (scopes follow at this offset).
uint32_t fixed_length(uint16_t type) {
    switch (type) {
    case dmar::kDrhd: return 16;
    case dmar::kRmrr: return 24;
    case dmar::kAtsr: return 8;
    case dmar::kRhsa: return 20;
    case dmar::kAndd: return 8;
    case dmar::kSatc: return 8;
    default: return 4;
    }
}

const char* type_name(uint16_t type) {
    switch (type) {
    case dmar::kDrhd: return "DRHD";
    case dmar::kRmrr: return "RMRR";
    case dmar::kAtsr: return "ATSR";
    case dmar::kRhsa: return "RHSA";
    case dmar::kAndd: return "ANDD";
    case dmar::kSatc: return "SATC";
    default: return "structure";
    }
}

struct Parser {
    const uint8_t* p;
    uint32_t len;
    Dmar& out;
    Why& why;

    __attribute__((format(printf, 4, 5))) Status fail(Status st, uint32_t off, const char* fmt, ...) {
        out = Dmar{};
        char line[200];
        BufferSink sink(line, sizeof line);
        va_list ap;
        va_start(ap, fmt);
        vformat(sink, fmt, ap);
        va_end(ap);
        return why.set(st, "DMAR: offset %u: %s", off, line);
    }

    // The device scopes in [off, end) of the structure at `at`.
    Status scopes(uint16_t type, uint32_t off, uint32_t end, unsigned& first, unsigned& n) {
        first = out.nscopes;
        n = 0;
        while (off < end) {
            if (end - off < 2) return fail(Status::invalid_argument, off, "device scope header runs past the end of its %s", type_name(type));
            const uint8_t stype = p[off], slen = p[off + 1];
            if (slen < 8) return fail(Status::invalid_argument, off, "device scope length %u is below the 8 bytes of one with a one-hop path", slen);
            if ((slen - 6) % 2) return fail(Status::invalid_argument, off, "device scope length %u leaves half a path entry", slen);
            if (slen > end - off)
                return fail(Status::invalid_argument, off, "device scope of %u bytes overruns its structure (which ends at offset %u)", slen, end);
            const unsigned hops = (slen - 6u) / 2;
            if (hops > DmarScope::kMaxPath) return fail(Status::invalid_argument, off, "device scope path of %u hops (moat follows at most %u)", hops, DmarScope::kMaxPath);
            if (stype < dmar::kScopeEndpoint || stype > dmar::kScopeAcpi) return fail(Status::invalid_argument, off, "device scope type %u is not one the specification defines", stype);
            if (out.nscopes == Dmar::kMaxScopes) return fail(Status::no_space, off, "more than %u device scopes", Dmar::kMaxScopes);
            DmarScope& s = out.scopes[out.nscopes++];
            s.type = stype;
            s.enum_id = p[off + 4];
            s.start_bus = p[off + 5];
            s.npath = static_cast<uint8_t>(hops);
            for (unsigned h = 0; h < hops; h++) {
                s.path[h].dev = p[off + 6 + 2 * h];
                s.path[h].fn = p[off + 7 + 2 * h];
                if (s.path[h].dev > 31 || s.path[h].fn > 7)
                    return fail(Status::invalid_argument, off + 6 + 2 * h, "device scope path entry %02x.%x is no PCI device/function", s.path[h].dev, s.path[h].fn);
            }
            n++;
            off += slen;
        }
        return Status::ok;
    }

    Status run() {
        if (len < dmar::kHeaderSize) return fail(Status::invalid_argument, 0, "%u bytes, shorter than the 48-byte DMAR header", len);
        if (p[0] != 'D' || p[1] != 'M' || p[2] != 'A' || p[3] != 'R') return fail(Status::invalid_argument, 0, "signature is not \"DMAR\"");
        const uint64_t length = le(p + 4, 4);
        if (length < dmar::kHeaderSize) return fail(Status::invalid_argument, 4, "length %lu is shorter than the 48-byte header", length);
        if (length > len) return fail(Status::invalid_argument, 4, "length %lu runs past the %u bytes there are (truncated table)", length, len);
        uint8_t sum = 0;
        for (uint32_t i = 0; i < length; i++) sum = static_cast<uint8_t>(sum + p[i]);
        if (sum != 0) return fail(Status::invalid_argument, 9, "checksum does not sum to 0 (off by 0x%02x)", sum);
        len = static_cast<uint32_t>(length);
        out = Dmar{};
        out.haw = p[36] + 1u;
        out.flags = p[37];
        if (out.haw < 32 || out.haw > 64) return fail(Status::invalid_argument, 36, "host address width %u bits is not one a machine has", out.haw);
        uint16_t include_all_seg[Dmar::kMaxDrhd] = {};
        unsigned nincl = 0;
        for (uint32_t off = dmar::kHeaderSize; off < len;) {
            if (len - off < 4) return fail(Status::invalid_argument, off, "remapping structure header runs past the end of the table (%u bytes left)", len - off);
            const uint16_t type = static_cast<uint16_t>(le(p + off, 2));
            const uint32_t slen = static_cast<uint32_t>(le(p + off + 2, 2));
            if (slen < fixed_length(type))
                return fail(Status::invalid_argument, off + 2, "length %u is below what the structure's fixed fields take (%u)", slen, fixed_length(type));
            if (slen > len - off) return fail(Status::invalid_argument, off + 2, "structure of %u bytes overruns the table (%u bytes left)", slen, len - off);
            const uint32_t end = off + slen;
            Status st = Status::ok;
            switch (type) {
            case dmar::kDrhd: {
                if (out.ndrhd == Dmar::kMaxDrhd) return fail(Status::no_space, off, "more than %u DRHD units", Dmar::kMaxDrhd);
                DmarDrhd d;
                d.offset = off;
                d.include_all = (p[off + 4] & dmar::kDrhdIncludePciAll) != 0;
                d.size_pages = 1u << (p[off + 5] & 0xf);
                d.segment = static_cast<uint16_t>(le(p + off + 6, 2));
                d.base = le(p + off + 8, 8);
                if (d.base == 0 || !is_aligned(d.base, kPageSize)) return fail(Status::invalid_argument, off + 8, "register base 0x%lx is not a 4 KiB-aligned address", d.base);
                if (out.haw < 64 && (d.base >> out.haw)) return fail(Status::invalid_argument, off + 8, "register base 0x%lx is beyond the %u-bit host address width", d.base, out.haw);
                if (d.include_all) {
                    for (unsigned k = 0; k < nincl; k++)
                        if (include_all_seg[k] == d.segment)
                            return fail(Status::invalid_argument, off + 4, "a second INCLUDE_PCI_ALL unit for segment %u", d.segment);
                    include_all_seg[nincl++] = d.segment;
                }
                st = scopes(type, off + 16, end, d.first_scope, d.nscopes);
                if (st != Status::ok) return st;
                out.drhd[out.ndrhd++] = d;
                break;
            }
            case dmar::kRmrr: {
                if (out.nrmrr == Dmar::kMaxRmrr) return fail(Status::no_space, off, "more than %u RMRRs", Dmar::kMaxRmrr);
                DmarRmrr r;
                r.offset = off;
                r.segment = static_cast<uint16_t>(le(p + off + 6, 2));
                r.base = le(p + off + 8, 8);
                r.limit = le(p + off + 16, 8);
                if (!is_aligned(r.base, kPageSize)) return fail(Status::invalid_argument, off + 8, "RMRR base 0x%lx is not 4 KiB-aligned", r.base);
                if (r.limit < r.base || r.limit == ~uint64_t{0} || !is_aligned(r.limit + 1, kPageSize))
                    return fail(Status::invalid_argument, off + 16, "RMRR limit 0x%lx does not end a 4 KiB page at or after base 0x%lx", r.limit, r.base);
                st = scopes(type, off + 24, end, r.first_scope, r.nscopes);
                if (st != Status::ok) return st;
                if (r.nscopes == 0) return fail(Status::invalid_argument, off, "RMRR [0x%lx, 0x%lx] names no device", r.base, r.limit);
                out.rmrr[out.nrmrr++] = r;
                break;
            }
            case dmar::kAtsr: out.skipped_atsr++; break;
            case dmar::kSatc: out.skipped_satc++; break;
            default: out.skipped_other++; break;
            }
            off = end;
        }
        return Status::ok;
    }
};

}  // namespace

Status parse_dmar(const void* table, size_t len, Dmar& out, Why& why) {
    if (!table) {
        out = Dmar{};
        return why.set(Status::invalid_argument, "DMAR: no table");
    }
    // Anything past 4 GiB is not a table; the header's length decides what is read.
    const uint32_t n = len > 0xffffffffu ? 0xffffffffu : static_cast<uint32_t>(len);
    Parser ps{static_cast<const uint8_t*>(table), n, out, why};
    return ps.run();
}

bool Dmar::rmrr_names(const DmarRmrr& r, uint16_t bdf) const {
    for (unsigned i = 0; i < r.nscopes; i++) {
        uint16_t b;
        const DmarScope& s = scopes[r.first_scope + i];
        if (s.type == dmar::kScopeEndpoint && s.direct_bdf(b) && b == bdf) return true;
    }
    return false;
}

const DmarDrhd* Dmar::unit_for(uint16_t segment, uint16_t bdf) const {
    const DmarDrhd* all = nullptr;
    for (unsigned i = 0; i < ndrhd; i++) {
        const DmarDrhd& d = drhd[i];
        if (d.segment != segment) continue;
        if (d.include_all) {
            all = &d;
            continue;
        }
        for (unsigned k = 0; k < d.nscopes; k++) {
            uint16_t b;
            const DmarScope& s = scopes[d.first_scope + k];
            if (s.type == dmar::kScopeEndpoint && s.direct_bdf(b) && b == bdf) return &d;
        }
    }
    return all;
}

}  // namespace moat::acpi
