#!/usr/bin/env python3
"""Builds the Linux guest's initramfs: a gzipped cpio (newc) holding Debian's static busybox and an
/init that prints what the guest sees (kernel version, /proc/cpuinfo, /proc/interrupts) and
powers off with PSCI (busybox `poweroff -f` -> reboot(2) -> PSCI SYSTEM_OFF).

The archive is written here, not by cpio(1), so that /dev/console (a character device the kernel
opens for init's stdout before /init runs) needs no root and no mknod, and so that the output is
byte-for-byte the same for the same inputs (fixed owner, times and order).

  tools/mkinitramfs.py [--busybox .deps/linux/busybox] [--modules .deps/linux/modules] [--init FILE] OUT.cpio.gz

--modules adds lib/modules/<version>/ from that tree (Debian's virtio modules, see
tools/install-deps.sh) with a modules.dep computed from each module's `depends=` field (the
package ships none: depmod writes it at install time), so `modprobe virtio_mmio` works.
"""
import argparse
import gzip
import os
import stat
import sys

INIT = """#!/bin/sh
# moat's Linux guest: show what the guest sees, then power off through PSCI.
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "moat-guest: uname -r: $(uname -r)"
echo "moat-guest: cpus online: $(cat /sys/devices/system/cpu/online)"
echo "moat-guest: --- /proc/cpuinfo"
cat /proc/cpuinfo
echo "moat-guest: --- /proc/interrupts"
cat /proc/interrupts
echo "moat-guest: --- end; powering off"
poweroff -f
echo "moat-guest: poweroff returned"
"""

APPLETS = ["sh", "mount", "cat", "echo", "uname", "poweroff", "reboot", "ls", "dmesg", "insmod", "modprobe", "sleep",
           "dd", "md5sum", "devmem", "sync", "basename", "head", "printf", "test", "[", "cmp", "tr", "cut", "wc", "grep"]


class Cpio:
    """newc ("070701") entries, each header and body padded to 4 bytes."""

    def __init__(self):
        self.out = bytearray()
        self.ino = 1

    def entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
        self.ino += 1
        self.out += b"070701" + b"".join(b"%08x" % f for f in fields) + name_b
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name):
        self.entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o644):
        self.entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self.entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor):
        self.entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self):
        self.entry("TRAILER!!!", 0)
        return bytes(self.out)


def module_deps(ko_path):
    """The `depends=` field of a module's .modinfo (names, comma-separated)."""
    with open(ko_path, "rb") as f:
        data = f.read()
    i = data.find(b"\0depends=")
    if i < 0:
        return []
    value = data[i + 9:data.index(b"\0", i + 9)].decode()
    return [d for d in value.split(",") if d]


def add_modules(cpio, root):
    base = os.path.join(root, "lib", "modules")
    versions = sorted(os.listdir(base))
    if len(versions) != 1:
        sys.exit(f"mkinitramfs: expected one kernel version under {base}, found {versions}")
    ver = versions[0]
    top = os.path.join(base, ver)
    cpio.dir("lib")
    cpio.dir("lib/modules")
    paths = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        cpio.dir(rel)
        for f in sorted(filenames):
            if f == "modules.dep":
                continue
            full = os.path.join(dirpath, f)
            with open(full, "rb") as fh:
                cpio.file(os.path.join(rel, f), fh.read())
            if f.endswith(".ko"):
                paths[f[:-3].replace("-", "_")] = (os.path.relpath(full, top), full)
    direct = {n: [d.replace("-", "_") for d in module_deps(full) if d.replace("-", "_") in paths] for n, (_, full) in paths.items()}

    def closure(name, seen):  # modules.dep lists every module a module needs, nearest first
        for d in direct[name]:
            if d not in seen:
                seen.append(d)
                closure(d, seen)
        return seen

    lines = []
    for name in sorted(paths):
        deps = [paths[d][0] for d in closure(name, [])]
        lines.append(f"{paths[name][0]}: {' '.join(deps)}".rstrip())
    cpio.file(f"lib/modules/{ver}/modules.dep", ("\n".join(lines) + "\n").encode())
    return len(paths)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    deps = os.path.join(here, "..", ".deps", "linux")
    ap.add_argument("--busybox", default=os.path.join(deps, "busybox"))
    ap.add_argument("--modules", default=None, help="a tree with lib/modules/<version>/ to include")
    ap.add_argument("--init", default=None, help="a shell script to use as /init instead of the default one")
    ap.add_argument("out")
    a = ap.parse_args()
    try:
        with open(a.busybox, "rb") as f:
            busybox = f.read()
    except OSError as e:
        sys.exit(f"mkinitramfs: {e}; run tools/install-deps.sh (it unpacks busybox-static:arm64 into .deps/linux)")
    if busybox[:4] != b"\x7fELF" or busybox[18:20] != b"\xb7\x00":
        sys.exit(f"mkinitramfs: {a.busybox} is not an arm64 ELF")

    c = Cpio()
    for d in ["bin", "dev", "proc", "sys", "tmp"]:
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3)
    c.file("bin/busybox", busybox, 0o755)
    for applet in APPLETS:
        c.symlink(f"bin/{applet}", "busybox")
    init = INIT.encode()
    if a.init:
        with open(a.init, "rb") as f:
            init = f.read()
    c.file("init", init, 0o755)
    nmod = add_modules(c, a.modules) if a.modules else 0
    data = c.finish()
    tmp = a.out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(gzip.compress(data, compresslevel=6, mtime=0))
    os.replace(tmp, a.out)
    print(f"mkinitramfs: {a.out}: busybox, /init, {nmod} modules, {len(data)} bytes before gzip")


if __name__ == "__main__":
    main()
