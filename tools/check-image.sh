#!/usr/bin/env bash
# Checks a linked moat.elf: only RELATIVE dynamic relocations (head.S applies nothing else),
# no undefined symbols, and prints the image size (text+data+bss).
set -euo pipefail
elf=$1
CROSS=${CROSS:-aarch64-linux-gnu-}
bad=$(${CROSS}readelf -rW "$elf" | awk '/R_AARCH64_/ && $3 != "R_AARCH64_RELATIVE" {print $3}' | sort -u)
if [ -n "$bad" ]; then echo "check-image: $elf has relocations head.S cannot apply: $bad" >&2; exit 1; fi
undef=$(${CROSS}nm -u "$elf" | grep -v ' w ' || true)
if [ -n "$undef" ]; then echo "check-image: undefined symbols in $elf:" >&2; echo "$undef" >&2; exit 1; fi
${CROSS}size "$elf" | awk 'NR==2 {printf "image: text %d, data %d, bss %d bytes\n", $1, $2, $3}'
