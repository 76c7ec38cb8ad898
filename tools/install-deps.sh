#!/usr/bin/env bash
# Installs the Debian 12 packages moat needs, and only those that are missing.
# Usage: tools/install-deps.sh [--check]   (--check: list what is missing, install nothing)
set -euo pipefail

# package -> why we need it
PKGS=(
  g++-aarch64-linux-gnu         # cross compiler, used freestanding for the EL2 image
  libfdt-dev                    # libfdt for host builds and tools
  picolibc-aarch64-linux-gnu    # the image's C library
  qemu-system-arm               # qemu-system-aarch64: virt + SMMUv3 + edu
  qemu-system-x86               # qemu-system-x86_64: q35 + intel-iommu (VT-d) + edu
  u-boot-qemu                   # Debian's U-Boot for the boot-path tests
  u-boot-tools                  # mkimage for FIT images
  device-tree-compiler          # dtc
  libgtest-dev                  # unit tests
  libbenchmark-dev              # make bench
  clang                         # libFuzzer
  libclang-rt-14-dev            # sanitizer and fuzzer runtimes for clang
  valgrind                      # make bench: instruction counts (callgrind)
  cpio                          # the Linux guest's initramfs (tools/mkinitramfs.py lists, cpio checks)
  g++ make python3
)

# libfdt-dev:arm64 conflicts with the host libfdt-dev (not Multi-Arch: same), so the arm64 static
# library is unpacked from Debian's own .deb into $ARM64_SYSROOT instead of being installed.
ARM64_SYSROOT=${ARM64_SYSROOT:-$(cd "$(dirname "$0")/.." && pwd)/.deps/arm64}

arm64_libfdt() {
  [ -f "$ARM64_SYSROOT/usr/lib/aarch64-linux-gnu/libfdt.a" ] && return 0
  [ "${1:-}" = "--check" ] && { echo "install-deps: missing: libfdt-dev:arm64 (unpacked into $ARM64_SYSROOT)"; return 1; }
  local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -q
  fi
  local tmp; tmp=$(mktemp -d); chmod 755 "$tmp"
  (cd "$tmp" && apt-get download -q libfdt-dev:arm64) || { $SUDO apt-get update -q; (cd "$tmp" && apt-get download -q libfdt-dev:arm64); }
  mkdir -p "$ARM64_SYSROOT"
  dpkg-deb -x "$tmp"/libfdt-dev_*_arm64.deb "$ARM64_SYSROOT"
  rm -rf "$tmp"
  echo "install-deps: unpacked libfdt-dev:arm64 into $ARM64_SYSROOT"
}

# The device trees Linux ships for the boards moat supports, for the real-trees test tier
# (tests/trees): ZCU102 DTBs from Debian's arm64 kernel package, the R-Car Gen3 Salvator-X/XS
# and R-Car Gen4 Spider (S4) and Falcon (V3U) trees compiled from linux-source-6.1 with the
# kernel's own include paths (Debian's kernel ships no Salvator, Spider or Falcon DTB). Fetched
# once into $TREES; never committed.
TREES=${TREES:-$(cd "$(dirname "$0")/.." && pwd)/.deps/trees}
RCAR_TREES="r8a77950-salvator-x r8a77951-salvator-x r8a77951-salvator-xs r8a77960-salvator-x r8a77960-salvator-xs
            r8a77961-salvator-xs r8a77965-salvator-x r8a77965-salvator-xs r8a779f0-spider r8a779a0-falcon"
ZCU102_TREES="zynqmp-zcu102-rev1.0 zynqmp-zcu102-rev1.1"

real_trees() {
  local b missing_trees=""
  for b in $RCAR_TREES $ZCU102_TREES; do [ -f "$TREES/$b.dtb" ] || missing_trees="$missing_trees $b"; done
  [ -z "$missing_trees" ] && return 0
  [ "${1:-}" = "--check" ] && { echo "install-deps: missing real trees:$missing_trees (into $TREES)"; return 1; }
  local tmp; tmp=$(mktemp -d); chmod 755 "$tmp"
  local kimg; kimg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9.]*-[0-9]*-arm64\).*/\1/p' | head -n 1)
  if [ -z "$kimg" ] || ! (cd "$tmp" && apt-get download -q "$kimg:arm64" linux-source-6.1 >"$tmp/apt.log" 2>&1); then
    echo "install-deps: ERROR: cannot fetch ${kimg:-linux-image-*-arm64} and linux-source-6.1 from Debian's archive" >&2
    echo "install-deps: the real-trees tier (tests/trees) will fail until they are fetched; apt said:" >&2
    sed 's/^/  /' "$tmp/apt.log" >&2 2>/dev/null || true
    rm -rf "$tmp"; return 1
  fi
  mkdir -p "$TREES" "$tmp/img" "$tmp/src"
  dpkg-deb --fsys-tarfile "$tmp"/linux-image-*_arm64.deb | tar -x -C "$tmp/img" --wildcards '*/xilinx/zynqmp-zcu102-rev1.*.dtb'
  for b in $ZCU102_TREES; do cp "$(find "$tmp/img" -name "$b.dtb" | head -n 1)" "$TREES/$b.dtb"; done
  # Only the Renesas sources and the headers they include (input.h includes the uapi event codes).
  dpkg-deb --fsys-tarfile "$tmp"/linux-source-6.1_*_all.deb | tar -x -O ./usr/src/linux-source-6.1.tar.xz |
    tar -xJ -C "$tmp/src" --wildcards 'linux-source-6.1/arch/arm64/boot/dts/renesas/*' 'linux-source-6.1/include/dt-bindings/*' \
        linux-source-6.1/include/uapi/linux/input-event-codes.h
  local k="$tmp/src/linux-source-6.1"
  for b in $RCAR_TREES; do
    cpp -nostdinc -I "$k/include" -I "$k/arch/arm64/boot/dts/renesas" -undef -D__DTS__ -x assembler-with-cpp \
        "$k/arch/arm64/boot/dts/renesas/$b.dts" -o "$tmp/$b.dts"
    dtc -q -I dts -O dtb -o "$TREES/$b.dtb" "$tmp/$b.dts"
  done
  echo "$kimg $(cd "$tmp" && ls linux-source-6.1_*_all.deb)" > "$TREES/SOURCE"
  rm -rf "$tmp"
  echo "install-deps: real device trees from $kimg and linux-source-6.1 in $TREES"
}

# QEMU 10.0 from Debian's bookworm-backports, beside the system's QEMU 7.2 (which stays the
# default): its SMMUv3 has stage 2 and nests, its intel-iommu has a first stage. The packages are
# unpacked into $QEMU10 (never installed), and the launchers in $QEMU10/bin give it its own module
# folder (QEMU_MODULE_DIR, searched before the system's; every start probes the ui-opengl and
# ui-spice-core modules, which 7.2 ships in qemu-system-common and 10 in the modules-opengl and
# modules-spice packages: without those 10 finds 7.2's and refuses them) and its own firmware
# (-L: its data files, and backports' SeaBIOS, which qemu-system-x86 10 requires at >= 1.16.3).
QEMU10=${QEMU10:-$(cd "$(dirname "$0")/.." && pwd)/.deps/qemu10}
QEMU10_VERSION=1:10.0.2+ds-2+deb13u1~bpo12+1
QEMU10_DEBS="qemu-system-arm=$QEMU10_VERSION qemu-system-x86=$QEMU10_VERSION qemu-system-common=$QEMU10_VERSION
             qemu-system-data=$QEMU10_VERSION qemu-system-modules-opengl=$QEMU10_VERSION
             qemu-system-modules-spice=$QEMU10_VERSION seabios/bookworm-backports"

qemu10() {
  if [ -x "$QEMU10/bin/qemu-system-aarch64" ] && [ -x "$QEMU10/bin/qemu-system-x86_64" ] &&
     [ "$(cat "$QEMU10/VERSION" 2>/dev/null)" = "$(echo $QEMU10_DEBS)" ]; then return 0; fi
  [ "${1:-}" = "--check" ] && { echo "install-deps: missing: QEMU $QEMU10_VERSION (unpacked into $QEMU10)"; return 1; }
  local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  # bookworm-backports is added to apt's sources when no source names it; its packages have
  # priority 100, so nothing installed from the main suite changes.
  local policy; policy=$(apt-cache policy qemu-system-arm 2>/dev/null || true)
  if ! grep -qF "$QEMU10_VERSION" <<<"$policy"; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' |
        $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
      echo "install-deps: added bookworm-backports to apt's sources (priority 100: nothing is upgraded from it)"
    fi
    $SUDO apt-get update -q
  fi
  local tmp; tmp=$(mktemp -d); chmod 755 "$tmp"
  # shellcheck disable=SC2086
  if ! (cd "$tmp" && apt-get download -q $QEMU10_DEBS >"$tmp/apt.log" 2>&1); then
    echo "install-deps: ERROR: cannot fetch QEMU $QEMU10_VERSION from bookworm-backports; apt said:" >&2
    sed 's/^/  /' "$tmp/apt.log" >&2; rm -rf "$tmp"; return 1
  fi
  rm -rf "$QEMU10"; mkdir -p "$QEMU10/bin"
  local d; for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$QEMU10"; done
  local moddir; moddir=$(dirname "$(find "$QEMU10/usr/lib" -name 'ui-curses.so' | head -n 1)")
  # Its libraries are bookworm's (the ones QEMU 7.2 uses): name any that are missing.
  local b missing_libs
  missing_libs=$(for b in qemu-system-aarch64 qemu-system-x86_64; do ldd "$QEMU10/usr/bin/$b"; done |
                 sed -n 's/^\s*\(\S*\) => not found.*/\1/p' | sort -u | tr '\n' ' ')
  if [ -n "$missing_libs" ]; then
    echo "install-deps: ERROR: QEMU 10 needs libraries this system lacks: $missing_libs(qemu-system-arm 7.2 pulls them in)" >&2
    rm -rf "$tmp"; return 1
  fi
  for b in qemu-system-aarch64 qemu-system-x86_64; do
    cat > "$QEMU10/bin/$b" <<EOF
#!/bin/sh
# QEMU $QEMU10_VERSION unpacked beside the system's QEMU (written by tools/install-deps.sh).
d=\$(cd "\$(dirname "\$0")/.." && pwd)
QEMU_MODULE_DIR=\$d/${moddir#"$QEMU10"/} exec "\$d/usr/bin/$b" -L "\$d/usr/share/qemu" -L "\$d/usr/share/seabios" "\$@"
EOF
    chmod 755 "$QEMU10/bin/$b"
  done
  echo $QEMU10_DEBS > "$QEMU10/VERSION"
  rm -rf "$tmp"
  echo "install-deps: $("$QEMU10/bin/qemu-system-aarch64" --version | head -n 1) unpacked into $QEMU10 (launchers in $QEMU10/bin)"
}

# The real client: Debian 12's own arm64 kernel (the Image, decompressed from the package's
# vmlinuz, and its virtio modules for later passthrough tests) and busybox-static:arm64 for the
# guest's initramfs (tools/mkinitramfs.py). Unpacked from the .debs into $LINUX, never installed.
LINUX=${LINUX:-$(cd "$(dirname "$0")/.." && pwd)/.deps/linux}

linux_guest() {
  # uio_pci_generic: the passthrough guest's driver for edu's INTx (tests/qemu/passthrough.init).
  [ -f "$LINUX/Image" ] && [ -x "$LINUX/busybox" ] && [ -f "$LINUX/VERSION" ] &&
      [ -n "$(find "$LINUX/modules" -name 'uio_pci_generic.ko*' 2>/dev/null)" ] && return 0
  [ "${1:-}" = "--check" ] && { echo "install-deps: missing: Debian's arm64 kernel and busybox-static:arm64 (into $LINUX)"; return 1; }
  local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -q
  fi
  local tmp; tmp=$(mktemp -d); chmod 755 "$tmp"
  local kimg; kimg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9.]*-[0-9]*-arm64\).*/\1/p' | head -n 1)
  if [ -z "$kimg" ] || ! (cd "$tmp" && apt-get download -q "$kimg:arm64" busybox-static:arm64 >"$tmp/apt.log" 2>&1); then
    echo "install-deps: ERROR: cannot fetch ${kimg:-linux-image-*-arm64} and busybox-static:arm64 from Debian's archive" >&2
    sed 's/^/  /' "$tmp/apt.log" >&2 2>/dev/null || true
    rm -rf "$tmp"; return 1
  fi
  local kver=${kimg#linux-image-}
  mkdir -p "$tmp/img" "$tmp/bb" "$LINUX"
  dpkg-deb --fsys-tarfile "$tmp"/linux-image-*_arm64.deb | tar -x -C "$tmp/img" --wildcards "./boot/vmlinuz-$kver" \
      "./lib/modules/$kver/modules.*" "./lib/modules/$kver/kernel/drivers/virtio/*" "./lib/modules/$kver/kernel/drivers/block/virtio_blk.ko*" \
      "./lib/modules/$kver/kernel/drivers/net/virtio_net.ko*" "./lib/modules/$kver/kernel/drivers/net/net_failover.ko*" \
      "./lib/modules/$kver/kernel/net/core/failover.ko*" "./lib/modules/$kver/kernel/drivers/uio/uio.ko*" \
      "./lib/modules/$kver/kernel/drivers/uio/uio_pci_generic.ko*"
  # Debian's arm64 vmlinuz is the Image gzipped; QEMU and booti want it plain (magic "ARM\x64" at 56).
  local vmlinuz="$tmp/img/boot/vmlinuz-$kver"
  if [ "$(head -c 2 "$vmlinuz" | od -An -tx1 | tr -d ' ')" = "1f8b" ]; then gzip -dc "$vmlinuz" > "$tmp/Image"; else cp "$vmlinuz" "$tmp/Image"; fi
  if [ "$(dd if="$tmp/Image" bs=1 skip=56 count=4 2>/dev/null)" != "$(printf 'ARM\x64')" ]; then
    echo "install-deps: ERROR: $kimg's vmlinuz is not an arm64 Image" >&2; rm -rf "$tmp"; return 1
  fi
  rm -rf "$LINUX/modules"; mkdir -p "$LINUX/modules"
  cp -a "$tmp/img/lib" "$LINUX/modules/"
  dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/bb"
  cp "$tmp/bb/bin/busybox" "$LINUX/busybox.tmp" && mv "$LINUX/busybox.tmp" "$LINUX/busybox"
  mv "$tmp/Image" "$LINUX/Image"
  echo "$kver $(cd "$tmp" && ls linux-image-*_arm64.deb busybox-static_*_arm64.deb | tr '\n' ' ')" > "$LINUX/VERSION"
  rm -rf "$tmp"
  echo "install-deps: Debian's arm64 kernel $kver and busybox-static:arm64 in $LINUX"
}

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  arm64_libfdt "${1:-}"
  real_trees "${1:-}" || true  # reported above; the real-trees tier fails without them
  qemu10 "${1:-}" || exit 1
  linux_guest "${1:-}" || true  # reported above; the Linux guest tier fails without it
  echo "install-deps: all dependencies present"
  exit 0
fi
echo "install-deps: missing: ${missing[*]}"
[ "${1:-}" = "--check" ] && exit 1

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root: apt-get install ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
arm64_libfdt
real_trees || true
qemu10
linux_guest || true
