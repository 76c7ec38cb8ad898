#!/usr/bin/env python3
"""Writes image_size (bytes from _start to _end, .bss included) into an arm64 Image header.

A PIE cannot carry the value as a link-time constant in its header without a dynamic
relocation, which would add the load address to it; so the build patches it in.
Usage: image-size.py moat.elf Image
"""
import struct
import subprocess
import sys

elf, image = sys.argv[1], sys.argv[2]
cross = __import__("os").environ.get("CROSS", "aarch64-linux-gnu-")
syms = {}
for line in subprocess.run([cross + "nm", elf], check=True, capture_output=True, text=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 3:
        syms[parts[2]] = int(parts[0], 16)
size = syms["_end"] - syms["_start"]
with open(image, "r+b") as f:
    head = f.read(64)
    if len(head) < 64 or head[56:60] != b"ARM\x64":
        sys.exit(f"image-size: {image} has no arm64 Image header")
    f.seek(16)
    f.write(struct.pack("<Q", size))
print(f"image: image_size 0x{size:x} written into {image}")
