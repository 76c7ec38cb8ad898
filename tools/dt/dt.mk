# moat-dt (device trees for guests and dom0, DMA-protection report) and the board trees in
# dts/. Included by the top-level Makefile (`-include tools/dt/dt.mk`; the guard below makes
# `make -f Makefile -f tools/dt/dt.mk TARGET` work too).
#   build/host/moat-dt   the host tool (tools/dt/*.cpp + the portable core it drives)
#   dts                  dts/*.dts -> build/dts/*.dtb; any dtc warning fails the build
#   dt-test              tests/dt/run.sh: every subcommand on QEMU virt, Salvator-X, ZCU102 and bad input
ifndef MOAT_DT_MK
MOAT_DT_MK := 1

.PHONY: dts dt-test

DT_TOOL := $(HOST_OUT)/moat-dt
DTS_OUT := $(BUILD)/dts
# The portable core: the registry names every driver's operations, so the drivers come along.
DT_CORE_SRCS := $(PORTABLE_SRCS) $(HOST_ARCH_SRCS)
DT_TOOL_OBJS := $(patsubst %.cpp,$(HOST_OUT)/%.o,$(DT_CORE_SRCS) $(wildcard tools/dt/*.cpp))

$(DT_TOOL): $(DT_TOOL_OBJS)
	$(HOST_CXX) $(HOST_LDFLAGS) $(DT_TOOL_OBJS) -lfdt -o $@

BOARD_DTBS := $(patsubst dts/%.dts,$(DTS_OUT)/%.dtb,$(wildcard dts/*.dts))
$(DTS_OUT)/%.dtb: dts/%.dts
	@mkdir -p $(dir $@)
	@dtc -I dts -O dtb -o $@ $< 2>$@.log; rc=$$?; \
	 if [ $$rc -ne 0 ] || [ -s $@.log ]; then cat $@.log; rm -f $@ $@.log; echo "dtc: $< must compile without warnings"; exit 1; fi; \
	 rm -f $@.log; echo "dtc $< -> $@"

dts: $(BOARD_DTBS)

# The unit tests' board trees (tests/unit/data/board_*.dts) /include/ these: rebuild with them.
$(HOST_OUT)/testdata/board_zcu102.dtb: dts/zcu102.dts
$(HOST_OUT)/testdata/board_salvator_x.dtb: dts/salvator-x.dts
$(HOST_OUT)/testdata/board_spider.dtb: dts/spider.dts

# `make test` runs tests/dt/run.sh through tests/run.sh; build what it needs first.
TEST_DEPS += $(DT_TOOL) $(BOARD_DTBS)

dt-test: $(DT_TOOL) $(BOARD_DTBS)
	@MOAT_DT=$(DT_TOOL) DTS_OUT=$(DTS_OUT) tests/dt/run.sh

endif
