# moat: the one entry point. `make help` lists the targets.
BOARD ?= qemu-virt
BUILD := build
HOST_OUT := $(BUILD)/host
IMG_OUT := $(BUILD)/$(BOARD)
ARM64_SYSROOT ?= $(CURDIR)/.deps/arm64
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

.DEFAULT_GOAL := all
.PHONY: all help deps run test unit qemu-test bench fuzz image clean

help:
	@echo "make run        boot moat in QEMU (virt + SMMUv3 + edu) and show what it finds"
	@echo "make test       host unit tests (ASan/UBSan) and QEMU boot tests; ends with 'N passed, M failed'"
	@echo "make bench      benchmarks (page tables); prints figures and ratios"
	@echo "make fuzz       libFuzzer targets (FUZZ_SECONDS per target, default 60)"
	@echo "make image      Image, FIT and DTB for BOARD=$(BOARD) under $(IMG_OUT)"
	@echo "make deps       install missing Debian packages (tools/install-deps.sh)"
	@echo "make clean      remove $(BUILD)/"

deps:
	@tools/install-deps.sh

# ---------------------------------------------------------------- sources
# Portable code: common, drivers and xen-compat are built both for the host and for the image.
PORTABLE_SRCS := $(wildcard common/*.cpp common/*/*.cpp drivers/*/*.cpp xen-compat/*.cpp)
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

$(HOST_OUT)/unit_tests: $(HOST_LIB_OBJS) $(UNIT_OBJS)
	$(HOST_CXX) $(HOST_LDFLAGS) $^ -lfdt -lgtest -lgtest_main -pthread -o $@

unit: $(HOST_OUT)/unit_tests
	$(HOST_OUT)/unit_tests

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

clean:
	rm -rf $(BUILD)

all: $(HOST_OUT)/unit_tests

# Fragments owned by their folders (benchmarks, fuzzers, tools).
-include tests/bench/bench.mk
