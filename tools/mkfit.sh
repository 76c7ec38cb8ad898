#!/usr/bin/env bash
# Builds a FIT image (kernel + fdt, SHA-256 hashed) for U-Boot's bootm.
# Usage: mkfit.sh IMAGE DTB LOAD_ADDR OUT.itb
set -euo pipefail
image=$1 dtb=$2 load=$3 out=$4
its=${out%.itb}.its
cat > "$its" <<ITS
/dts-v1/;
/ {
    description = "moat EL2 image";
    #address-cells = <1>;
    images {
        kernel-1 {
            description = "moat";
            data = /incbin/("$(realpath "$image")");
            type = "kernel";
            arch = "arm64";
            os = "linux";
            compression = "none";
            load = <$load>;
            entry = <$load>;
            hash-1 { algo = "sha256"; };
        };
        fdt-1 {
            description = "board device tree";
            data = /incbin/("$(realpath "$dtb")");
            type = "flat_dt";
            arch = "arm64";
            compression = "none";
            hash-1 { algo = "sha256"; };
        };
    };
    configurations {
        default = "conf-1";
        conf-1 {
            kernel = "kernel-1";
            fdt = "fdt-1";
        };
    };
};
ITS
mkimage -q -f "$its" "$out"
echo "fit: $out (kernel at $load)"
