#!/usr/bin/env python3
"""Writes the passthrough guest's disk: 8 MiB of pseudo-random bytes (a fixed seed, so the same
file every time) followed by 8 MiB of zeroes, where the guest writes its round-trip block
(sector 16384). Prints the MD5 of the first 8 MiB: the checksum the guest's /init must print
after reading the disk through virtio-blk-pci, the SMMU and moat's DMA domain.

  tools/mkdisk.py OUT.img
"""
import hashlib
import os
import random
import sys

DATA = 8 << 20
SEED = 14


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    out = sys.argv[1]
    data = random.Random(SEED).randbytes(DATA)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.write(bytes(DATA))
    os.replace(tmp, out)
    print(hashlib.md5(data).hexdigest())


if __name__ == "__main__":
    main()
