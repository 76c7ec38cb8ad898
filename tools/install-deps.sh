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
  u-boot-qemu                   # Debian's U-Boot for the boot-path tests
  u-boot-tools                  # mkimage for FIT images
  device-tree-compiler          # dtc
  libgtest-dev                  # unit tests
  libbenchmark-dev              # make bench
  clang                         # libFuzzer
  libclang-rt-14-dev            # sanitizer and fuzzer runtimes for clang
  valgrind                      # make bench: instruction counts (callgrind)
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

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  arm64_libfdt "${1:-}"
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
