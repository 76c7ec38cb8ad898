# moat: the one entry point. `make help` lists the targets.
BOARD ?= qemu-virt
BUILD := build
HOST_OUT := $(BUILD)/host
# BOARD=q35 is the x86_64 image (arch/x86_64/x86.mk, under X86_OUT); the arm64 rules then stay
# on qemu-virt, which `make test` boots whatever the board.
ARM_BOARD := $(if $(filter q35,$(BOARD)),qemu-virt,$(BOARD))
IMG_OUT := $(BUILD)/$(ARM_BOARD)
X86_OUT := $(BUILD)/q35
ARM64_SYSROOT ?= $(CURDIR)/.deps/arm64
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

.DEFAULT_GOAL := all
.SECONDARY:  # keep intermediate objects (the fuzz and guest links would otherwise rebuild them each time)
.PHONY: all help deps run run-linux run-passthrough test unit tsan-unit bench fuzz image clean

help:
	@echo "make run        boot moat in QEMU 7.2 (virt + SMMUv3 + edu): DMA translated and faulting, then a PV-IOMMU guest"
	@echo "                QEMU=10: in QEMU 10.0 (SMMUv3 with stage 2: edu's DMA through the guest's own stage-2 table)"
	@echo "make run-linux  boot moat with Debian's arm64 kernel as a dom0less guest"
	@echo "make run-passthrough  the same kernel with virtio-blk-pci and edu passed through (the last step of make run)"
	@echo "make test       unit (ASan/UBSan), QEMU boots (on QEMU 7.2 and 10), dt, pv and fuzz-smoke suites; ends with 'N passed, M failed'"
	@echo "make bench      page-table benchmarks (figures, ratio to memset, callgrind instruction counts)"
	@echo "make fuzz       libFuzzer targets (FUZZ_SECONDS per target, default 60)"
	@echo "make image      Image, FIT and DTB for BOARD=$(BOARD) (qemu-virt, salvator-x, spider, zcu102) under $(IMG_OUT); BOARD=q35: moat.elf (x86_64, PVH)"
	@echo "make run BOARD=q35  boot the x86_64 image on QEMU q35 with VT-d and edu"
	@echo "make unit       only the host unit tests"
	@echo "make tsan-unit  the lock, interrupt and per-CPU tests under ThreadSanitizer"
	@echo "make dt-test    only the moat-dt suite; make dts: board trees, failing on any dtc warning"
	@echo "make deps       install missing Debian packages (tools/install-deps.sh)"
	@echo "make clean      remove $(BUILD)/"

deps:
	@tools/install-deps.sh

# ---------------------------------------------------------------- sources
# Portable code: common, drivers and xen-compat are built both for the host and for the image.
PORTABLE_SRCS := $(wildcard common/*.cpp common/*/*.cpp drivers/*/*.cpp xen-compat/*.cpp hyp/*.cpp)
HOST_ARCH_SRCS := $(wildcard arch/host/*.cpp)
MODEL_SRCS := $(wildcard tests/models/*.cpp)
UNIT_SRCS := $(wildcard tests/unit/*.cpp)

WARN := -Wall -Wextra -Werror -Wconversion -Wsign-conversion -Wshadow -Wcast-align -Wnull-dereference \
        -Wno-missing-field-initializers
CXXSTD := -std=c++20

# ---------------------------------------------------------------- host builds
HOST_CXX ?= g++
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
HOST_CXXFLAGS := $(CXXSTD) $(WARN) -O1 -g $(SAN) -Iarch/host/include -I. -MMD -MP
HOST_LDFLAGS := $(SAN)

$(HOST_OUT)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(HOST_CXX) $(HOST_CXXFLAGS) -c $< -o $@

HOST_LIB_OBJS := $(patsubst %.cpp,$(HOST_OUT)/%.o,$(PORTABLE_SRCS) $(HOST_ARCH_SRCS) $(MODEL_SRCS))
UNIT_OBJS := $(patsubst %.cpp,$(HOST_OUT)/%.o,$(UNIT_SRCS))

# Device trees the unit tests read, compiled from tests/unit/data/*.dts.
TESTDATA := $(patsubst tests/unit/data/%.dts,$(HOST_OUT)/testdata/%.dtb,$(wildcard tests/unit/data/*.dts))
$(HOST_OUT)/testdata/%.dtb: tests/unit/data/%.dts
	@mkdir -p $(dir $@)
	dtc -q -I dts -O dtb -o $@ $<

$(HOST_OUT)/unit_tests: $(HOST_LIB_OBJS) $(UNIT_OBJS) | $(TESTDATA)
	$(HOST_CXX) $(HOST_LDFLAGS) $(HOST_LIB_OBJS) $(UNIT_OBJS) -lfdt -lgtest -lgtest_main -pthread -o $@

unit: $(HOST_OUT)/unit_tests $(TESTDATA)
	$(HOST_OUT)/unit_tests

# ThreadSanitizer over the tests that run several host threads as CPUs (locks, interrupt mask,
# per-CPU data, and the SMP stress test: mappers, attach/detach, faults and a drainer on one
# SMMUv3 model); the rest of the suite is single-threaded and stays on ASan/UBSan. The whole
# portable core is built with TSan so that every lock those tests cross is instrumented.
# -Wno-tsan: the barriers are standalone fences, which TSan does not model; the tests order
# their threads through locks and atomics instead.
TSAN_OUT := $(BUILD)/tsan
TSAN_CXXFLAGS := $(CXXSTD) $(WARN) -Wno-tsan -O1 -g -fsanitize=thread -Iarch/host/include -I. -MMD -MP
TSAN_TESTS := tests/unit/irq_controller_test.cpp tests/unit/irq_lock_test.cpp tests/unit/percpu_test.cpp \
              tests/unit/smp_stress_test.cpp
TSAN_SRCS := $(PORTABLE_SRCS) $(HOST_ARCH_SRCS) $(MODEL_SRCS) $(TSAN_TESTS)
$(TSAN_OUT)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(HOST_CXX) $(TSAN_CXXFLAGS) -c $< -o $@
$(TSAN_OUT)/seam_tests: $(patsubst %.cpp,$(TSAN_OUT)/%.o,$(TSAN_SRCS))
	$(HOST_CXX) -fsanitize=thread $^ -lfdt -lgtest -lgtest_main -pthread -o $@
tsan-unit: $(TSAN_OUT)/seam_tests
	TSAN_OPTIONS=halt_on_error=1 $(TSAN_OUT)/seam_tests

# Dependencies first (quick when all are there), then everything the tests need.
test: deps
	@$(MAKE) -j$$(nproc) --no-print-directory $(HOST_OUT)/unit_tests $(TESTDATA) $(IMG_OUT)/Image $(IMG_OUT)/moat.itb $(TEST_DEPS)
	@IMG_OUT=$(IMG_OUT) tests/run.sh $(HOST_OUT)/unit_tests

ifeq ($(BOARD),q35)
# isa-debug-exit makes QEMU exit with (status << 1) | 1; a triple fault (-no-reboot) exits with 0.
run: deps
	@$(MAKE) --no-print-directory $(X86_OUT)/moat.elf
	@echo "== booting $(X86_OUT)/moat.elf: QEMU q35 with VT-d (intel-iommu) and an edu PCI device (exit: Ctrl-A x)"
	$(QEMU_X86_RUN) -kernel $(X86_OUT)/moat.elf; rc=$$?; \
	  if [ $$((rc & 1)) -eq 1 ]; then echo "== moat exited with status $$((rc >> 1))"; exit $$((rc >> 1)); \
	  else echo "== QEMU exited with $$rc without moat's exit status"; exit 1; fi
else
run: deps
	@$(MAKE) --no-print-directory $(IMG_OUT)/Image
	@echo "== booting $(IMG_OUT)/Image: $$($(QEMU_SYSTEM_AARCH64) --version | head -n 1), virt at EL2 with an SMMUv3 and an edu PCI device (exit: Ctrl-A x)"
	$(QEMU_RUN) -kernel $(IMG_OUT)/Image; status=$$?; echo "== moat exited with status $$status"; exit $$status
	@$(MAKE) --no-print-directory run-passthrough

endif

# Debian's arm64 kernel as moat's dom0less guest domU1, configured by moat-imagebuilder from
# LINUX_CFG (tools/imagebuilder/imagebuilder.mk; default tools/imagebuilder/examples/qemu-virt-linux.cfg).
run-linux: deps
	@$(MAKE) --no-print-directory $(IMG_OUT)/Image linux-config
	@echo "== booting $(IMG_OUT)/Image with Debian's arm64 kernel as guest domU1 ($(LINUX_CFG); exit: Ctrl-A x)"
	$(QEMU_RUN) -kernel $(IMG_OUT)/Image $$(cat $(LINUX_DIR)/qemu.args); status=$$?; echo "== moat exited with status $$status"; exit $$status

# The same kernel with virtio-blk-pci and edu passed through (PT_CFG, tools/imagebuilder/imagebuilder.mk):
# its /init reads the disk through the SMMU and prints the checksum, lists the PCI functions it
# sees, pokes its ECAM, and points edu's DMA into its RAM and then at moat's image (the fault).
# The guest's checksum is compared with the disk's own at the end. Bounded: PT_TIMEOUT seconds.
PT_TIMEOUT ?= 300
PT_QEMU_DEVICES = -drive if=none,id=d0,file=$(PT_DISK),format=raw \
    -device virtio-blk-pci,drive=d0,disable-legacy=on,iommu_platform=on,addr=02.0 \
    -device edu,addr=03.0,dma_mask=0xffffffffffff -device pci-testdev,addr=04.0
run-passthrough: deps
	@$(MAKE) --no-print-directory $(IMG_OUT)/Image passthrough-config
	@echo "== booting $(IMG_OUT)/Image with Debian's arm64 kernel as guest domU1, virtio-blk-pci (00:02.0) and edu (00:03.0)" \
	      "passed through ($(PT_CFG); exit: Ctrl-A x)"
	@echo "== $(PT_DISK): 8 MiB of pseudo-random data (tools/mkdisk.py), md5 $$(cat $(PT_DISK).md5)"
	@{ timeout --foreground $(PT_TIMEOUT) $(QEMU_BASE) $(PT_QEMU_DEVICES) -kernel $(IMG_OUT)/Image $$(cat $(PT_DIR)/qemu.args); \
	   echo $$? > $(PT_DIR)/status; } | tee $(PT_DIR)/run.log; \
	status=$$(cat $(PT_DIR)/status); \
	sum=$$(tr -d '\r' < $(PT_DIR)/run.log | sed -n 's/^(domU1) moat-guest: checksum //p'); \
	if [ "$$sum" = "$$(cat $(PT_DISK).md5)" ]; then echo "== the guest read the disk through the SMMU: its checksum $$sum is the disk's"; \
	else echo "== the guest's checksum '$$sum' is not the disk's $$(cat $(PT_DISK).md5)"; [ "$$status" -ne 0 ] || status=1; fi; \
	echo "== moat exited with status $$status"; exit $$status

# ---------------------------------------------------------------- the arm64 EL2 image
CROSS ?= aarch64-linux-gnu-
PICOLIBC := /usr/lib/picolibc/aarch64-linux-gnu
BOARD_SRC := arch/arm64/board_$(subst -,_,$(ARM_BOARD)).cpp
ARM64_SRCS := $(filter-out arch/arm64/board_%.cpp,$(wildcard arch/arm64/*.cpp)) arch/freestanding/runtime.cpp $(BOARD_SRC) $(PORTABLE_SRCS)
ARM64_ASM := $(wildcard arch/arm64/*.S)
ARM64_FLAGS := -ffreestanding -fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-use-cxa-atexit \
               -nostdlib -mgeneral-regs-only -mstrict-align -mno-outline-atomics -fpie -fno-plt -fno-stack-protector \
               -ffunction-sections -fdata-sections
ARM64_CXXFLAGS := $(CXXSTD) $(WARN) -O2 -g $(ARM64_FLAGS) -I$(IMG_OUT) \
                  -Iarch/arm64/include -I. -isystem $(ARM64_SYSROOT)/usr/include -isystem $(PICOLIBC)/include -MMD -MP
ARM64_LDFLAGS := -nostdlib -static-pie -Wl,--no-dynamic-linker -Wl,-T,arch/arm64/image.ld -Wl,--gc-sections \
                 -Wl,-z,norelro -Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,--no-warn-rwx-segments
ARM64_LIBS := $(ARM64_SYSROOT)/usr/lib/aarch64-linux-gnu/libfdt.a $(PICOLIBC)/lib/libc.a -lgcc
ARM64_OBJS := $(patsubst %.cpp,$(IMG_OUT)/obj/%.o,$(ARM64_SRCS)) $(patsubst %.S,$(IMG_OUT)/obj/%.o,$(ARM64_ASM))

# Objects are rebuilt when the flags change; the version lives in a header only main.cpp reads.
.PHONY: FORCE
$(IMG_OUT)/flags.txt: FORCE
	@mkdir -p $(dir $@)
	@echo '$(ARM64_CXXFLAGS)' | cmp -s - $@ || echo '$(ARM64_CXXFLAGS)' > $@
$(IMG_OUT)/version.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define MOAT_VERSION "$(VERSION)"' | cmp -s - $@ || echo '#define MOAT_VERSION "$(VERSION)"' > $@
$(IMG_OUT)/obj/arch/arm64/main.o: $(IMG_OUT)/version.h

$(IMG_OUT)/obj/%.o: %.cpp $(ARM64_SYSROOT)/usr/lib/aarch64-linux-gnu/libfdt.a $(IMG_OUT)/flags.txt
	@mkdir -p $(dir $@)
	$(CROSS)g++ $(ARM64_CXXFLAGS) -c $< -o $@
$(IMG_OUT)/obj/%.o: %.S $(IMG_OUT)/flags.txt
	@mkdir -p $(dir $@)
	$(CROSS)gcc -I$(IMG_OUT) -c $< -o $@

# The PV-IOMMU test guest: an EL1 program linked at guest RAM, built from the same portable
# objects as the image, then carried inside it (arch/arm64/guest_blob.S).
GUEST_OBJS := $(patsubst %,$(IMG_OUT)/obj/%.o,tests/qemu/guest/start tests/qemu/guest/guest common/fdt common/fdt_check common/format \
              common/status drivers/serial/pl011 drivers/serial/select drivers/pci/edu)
$(IMG_OUT)/guest.elf: $(GUEST_OBJS) tests/qemu/guest/guest.ld
	$(CROSS)g++ -nostdlib -static -no-pie -Wl,-T,tests/qemu/guest/guest.ld -Wl,--gc-sections -Wl,--build-id=none -Wl,--no-warn-rwx-segments \
	    $(GUEST_OBJS) $(ARM64_LIBS) -o $@
$(IMG_OUT)/guest.bin: $(IMG_OUT)/guest.elf
	$(CROSS)objcopy -O binary $< $@
$(IMG_OUT)/obj/arch/arm64/guest_blob.o: $(IMG_OUT)/guest.bin
$(ARM64_SYSROOT)/usr/lib/aarch64-linux-gnu/libfdt.a:
	tools/install-deps.sh

$(IMG_OUT)/moat.elf: $(ARM64_OBJS) arch/arm64/image.ld
	$(CROSS)g++ $(ARM64_LDFLAGS) $(ARM64_OBJS) $(ARM64_LIBS) -o $@
	@tools/check-image.sh $@
$(IMG_OUT)/Image: $(IMG_OUT)/moat.elf
	$(CROSS)objcopy -O binary $< $@
	@tools/image-size.py $< $@

# The board's device tree: QEMU's own for virt (dumped with the machine options `make run`
# uses), our sources in dts/ for real boards.
QEMU_MACHINE := virt,virtualization=on,gic-version=3,iommu=smmuv3
# `make run` boots Debian 12's QEMU 7.2 (SMMUv3 stage 1 only); `make run QEMU=10` the QEMU 10.0
# tools/install-deps.sh unpacks from bookworm-backports (SMMUv3 nested: stage 2 shared with the
# guest). QEMU_SYSTEM_AARCH64=... names any other binary. `make test` runs the QEMU tier on both.
QEMU ?= 7.2
ifneq ($(filter 10 10.0,$(QEMU)),)
QEMU_SYSTEM_AARCH64 ?= .deps/qemu10/bin/qemu-system-aarch64
else
QEMU_SYSTEM_AARCH64 ?= qemu-system-aarch64
endif
QEMU_BASE := $(QEMU_SYSTEM_AARCH64) -machine $(QEMU_MACHINE) -cpu cortex-a57 -m 1G -nographic -nic none -semihosting
QEMU_RUN := $(QEMU_BASE) -device edu
ifeq ($(ARM_BOARD),qemu-virt)
$(IMG_OUT)/board.dtb:
	@mkdir -p $(dir $@)
	qemu-system-aarch64 -machine $(QEMU_MACHINE),dumpdtb=$@ -cpu cortex-a57 -m 1G -nographic -nic none -device edu >/dev/null
FIT_LOAD := 0x40400000
else
$(IMG_OUT)/board.dtb: dts/$(ARM_BOARD).dts
	@mkdir -p $(dir $@)
	dtc -q -I dts -O dtb -o $@ $<
FIT_LOAD ?= 0x48080000
endif
$(IMG_OUT)/moat.itb: $(IMG_OUT)/Image $(IMG_OUT)/board.dtb tools/mkfit.sh
	tools/mkfit.sh $(IMG_OUT)/Image $(IMG_OUT)/board.dtb $(FIT_LOAD) $@

ifeq ($(BOARD),q35)
image: $(X86_OUT)/moat.elf
else
image: $(IMG_OUT)/Image $(IMG_OUT)/moat.itb $(IMG_OUT)/board.dtb
endif

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

clean:
	rm -rf $(BUILD)

ifeq ($(BOARD),q35)
all: $(HOST_OUT)/unit_tests $(X86_OUT)/moat.elf
else
all: $(HOST_OUT)/unit_tests $(IMG_OUT)/Image
endif

# ---------------------------------------------------------------- host tools
# moat-pv-replay: PV-IOMMU traces against the dispatcher, the SMMUv3 driver and its model.
$(HOST_OUT)/moat-pv-replay: $(HOST_OUT)/tools/pv-replay/replay.o $(HOST_LIB_OBJS)
	$(HOST_CXX) $(HOST_LDFLAGS) $^ -lfdt -o $@

# ---------------------------------------------------------------- fuzzing (clang, libFuzzer)
FUZZ_OUT := $(BUILD)/fuzz
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 10
FUZZ_CXXFLAGS := $(CXXSTD) -O1 -g -fsanitize=fuzzer-no-link,address,undefined -Iarch/host/include -I. -MMD -MP
FUZZ_TARGETS := $(patsubst tests/fuzz/%.cpp,$(FUZZ_OUT)/%,$(wildcard tests/fuzz/*_fuzz.cpp))
FUZZ_LIB_OBJS := $(patsubst %.cpp,$(FUZZ_OUT)/obj/%.o,$(PORTABLE_SRCS) $(HOST_ARCH_SRCS) $(MODEL_SRCS))
$(FUZZ_OUT)/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_CXXFLAGS) -c $< -o $@
$(FUZZ_OUT)/%: $(FUZZ_OUT)/obj/tests/fuzz/%.o $(FUZZ_LIB_OBJS)
	clang++ -fsanitize=fuzzer,address,undefined $^ -lfdt -o $@

# `make fuzz` explores for FUZZ_SECONDS per target; `make test` runs a short smoke of each.
# The saved hostile trees and findings seed the DT fuzzers, the example configs the guest builder's.
fuzz: $(FUZZ_TARGETS) $(TESTDATA)
	@for f in $(FUZZ_TARGETS); do c=$(FUZZ_OUT)/corpus/$$(basename $$f); mkdir -p $$c; \
	  case $$(basename $$f) in dtb_fuzz|dom0_fuzz|dom0less_fuzz) cp $(TESTDATA) tests/dt/hostile/*.dtb tests/dt/fuzz/*.dtb $$c/;; \
	  guest_config_fuzz) cp tools/dt/examples/*.cfg $$c/;; esac; \
	  echo "== $$f for $(FUZZ_SECONDS) s"; $$f -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) -print_final_stats=1 $$c || exit 1; done

# Fragments owned by their folders (benchmarks, fuzzers, tools). A fragment adds what
# `make test` must build first to TEST_DEPS.
TEST_DEPS := $(HOST_OUT)/moat-pv-replay $(FUZZ_TARGETS) $(TSAN_OUT)/seam_tests
-include tests/bench/bench.mk
include arch/x86_64/x86.mk
-include tools/dt/dt.mk
-include tools/imagebuilder/imagebuilder.mk
