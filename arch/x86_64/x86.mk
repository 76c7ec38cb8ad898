# ---------------------------------------------------------------- the x86_64 image (BOARD=q35)
# Built with the host's g++ used freestanding (the host is x86_64): no red zone (exceptions
# push on the same stack), general registers only (no SSE/x87 state is saved), linked at a low
# identity-mapped address, so the default small code model serves. Debian's x86_64 libfdt.a is
# linked as it is; the arch supplies the string functions it calls (no picolibc for x86_64).
X86_SRCS := $(wildcard arch/x86_64/*.cpp) arch/freestanding/runtime.cpp $(PORTABLE_SRCS)
X86_ASM := $(wildcard arch/x86_64/*.S)
X86_FLAGS := -ffreestanding -fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-use-cxa-atexit -nostdlib \
             -mno-red-zone -mgeneral-regs-only -fno-pie -fno-pic -fno-stack-protector -fno-plt \
             -ffunction-sections -fdata-sections
X86_CXXFLAGS := $(CXXSTD) $(WARN) -O2 -g $(X86_FLAGS) -I$(X86_OUT)/gen -Iarch/x86_64/include -I. -MMD -MP
X86_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,arch/x86_64/image.ld -Wl,--gc-sections -Wl,--build-id=none \
               -Wl,-z,max-page-size=4096 -Wl,--no-warn-rwx-segments
X86_LIBS := /usr/lib/x86_64-linux-gnu/libfdt.a -lgcc
X86_OBJS := $(patsubst %.cpp,$(X86_OUT)/o/%.o,$(X86_SRCS)) $(patsubst %.S,$(X86_OUT)/o/%.o,$(X86_ASM))

$(X86_OUT)/gen/flags.txt: FORCE
	@mkdir -p $(dir $@)
	@echo '$(X86_CXXFLAGS)' | cmp -s - $@ || echo '$(X86_CXXFLAGS)' > $@
$(X86_OUT)/gen/version.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define MOAT_VERSION "$(VERSION)"' | cmp -s - $@ || echo '#define MOAT_VERSION "$(VERSION)"' > $@
$(X86_OUT)/o/arch/x86_64/main.o: $(X86_OUT)/gen/version.h

$(X86_OUT)/o/%.o: %.cpp $(X86_OUT)/gen/flags.txt
	@mkdir -p $(dir $@)
	$(HOST_CXX) $(X86_CXXFLAGS) -c $< -o $@
$(X86_OUT)/o/%.o: %.S $(X86_OUT)/gen/flags.txt
	@mkdir -p $(dir $@)
	$(HOST_CXX) -c $< -o $@

$(X86_OUT)/moat.elf: $(X86_OBJS) arch/x86_64/image.ld
	$(HOST_CXX) $(X86_LDFLAGS) $(X86_OBJS) $(X86_LIBS) -o $@
	@undef=$$(nm -u $@); if [ -n "$$undef" ]; then echo "undefined symbols in $@:"; echo "$$undef"; rm -f $@; exit 1; fi
	@size $@ | awk 'NR==2 {printf "image: text %d, data %d, bss %d bytes\n", $$1, $$2, $$3}'

# What `make run BOARD=q35` and the q35 tests boot: q35 with VT-d (added first, before the PCI
# devices it translates), edu, the exit device, and nothing else that does DMA.
ifneq ($(filter 10 10.0,$(QEMU)),)
QEMU_X86 ?= .deps/qemu10/bin/qemu-system-x86_64
else
QEMU_X86 ?= qemu-system-x86_64
endif
QEMU_X86_ARGS := -machine q35 -m 512M -nographic -no-reboot -vga none -nic none \
                 -device isa-debug-exit,iobase=0xf4,iosize=0x04
QEMU_X86_RUN := $(QEMU_X86) $(QEMU_X86_ARGS) -device intel-iommu -device edu

TEST_DEPS += $(X86_OUT)/moat.elf
