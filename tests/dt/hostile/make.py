#!/usr/bin/env python3
"""Writes the hostile boot trees moat must refuse (regression inputs for moat-dt, the unit tests
and the image). Each is a small valid tree with one field made hostile; run from the repository
root: tests/dt/hostile/make.py OUTDIR. The prop_len and v4 files in this folder were written by
it; the fuzz_* files are fuzzer findings, saved as they were found."""
import struct, sys, os

def tree(version=17, root_name=b"", prop_len=None):
    """A tree with a root node holding one property "a" = <1> and one child "c"."""
    strings = b"a\0"
    s = b""
    s += struct.pack(">I", 1) + root_name + b"\0"
    s += b"\0" * (-len(s) % 4)
    s += struct.pack(">III", 3, 4 if prop_len is None else prop_len, 0) + struct.pack(">I", 1)
    s += struct.pack(">I", 1) + b"c\0\0\0" + struct.pack(">I", 2)
    s += struct.pack(">I", 2) + struct.pack(">I", 9)
    rsv = struct.pack(">QQ", 0, 0)
    hdr_len = 40
    off_rsv = hdr_len
    off_struct = off_rsv + len(rsv)
    off_strings = off_struct + len(s)
    total = off_strings + len(strings)
    hdr = struct.pack(">10I", 0xd00dfeed, total, off_struct, off_strings, off_rsv, version,
                      min(version, 16), 0, len(strings), len(s))
    return hdr + rsv + s + strings

CASES = {
    # libfdt 1.6.1's fdt_check_full loops forever: the length wraps its offset arithmetic.
    "prop_len_fffffff4.dtb": tree(prop_len=0xfffffff4),
    # A version-4 tree stores full paths as names; without a '/' libfdt 1.6.1 reads address 0.
    "v4_root_without_slash.dtb": tree(version=4, root_name=b"root"),
}

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for name, blob in CASES.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
