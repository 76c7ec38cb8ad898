# Benchmarks (owned by tests/bench). `make bench` builds the page-table benchmark at -O2 without
# sanitizers from the same sources as the image, runs it, then counts instructions per page under
# callgrind (`make bench-instructions` alone does only the latter).
.PHONY: bench-instructions

BENCH_OUT := $(BUILD)/bench
BENCH_CXX ?= $(HOST_CXX)
BENCH_CXXFLAGS := $(CXXSTD) $(WARN) -O2 -g -Iarch/host/include -I. -MMD -MP
# Only what the page tables need: the rest of common/ is none of the benchmark's business.
BENCH_LIB_SRCS := common/page_pool.cpp common/status.cpp $(wildcard common/iopt/*.cpp) arch/host/host.cpp arch/host/fill.cpp
BENCH_LIB_OBJS := $(patsubst %.cpp,$(BENCH_OUT)/obj/%.o,$(BENCH_LIB_SRCS))
BENCH_CALLGRIND := valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file=$(BENCH_OUT)/callgrind.out

$(BENCH_OUT)/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(BENCH_CXX) $(BENCH_CXXFLAGS) -c $< -o $@

$(BENCH_OUT)/iopt_bench: $(BENCH_OUT)/obj/tests/bench/iopt_bench.o $(BENCH_LIB_OBJS)
	$(BENCH_CXX) $^ -lbenchmark -pthread -o $@

$(BENCH_OUT)/iopt_instr: $(BENCH_OUT)/obj/tests/bench/iopt_instr.o $(BENCH_LIB_OBJS)
	$(BENCH_CXX) $^ -o $@

# Map/unmap throughput with 1 and 2 threads through IoDomain (its lock and the pool's), as a ratio.
# IoDomain formats its why() text (format.o), whose console lock masks interrupts (host irq.o).
$(BENCH_OUT)/smp_bench: $(BENCH_OUT)/obj/tests/bench/smp_bench.o $(BENCH_LIB_OBJS) $(BENCH_OUT)/obj/common/io_domain.o $(BENCH_OUT)/obj/common/format.o \
                       $(BENCH_OUT)/obj/arch/host/cpu.o $(BENCH_OUT)/obj/arch/host/irq.o
	$(BENCH_CXX) $^ -pthread -o $@

# The vGIC's per-exit work with 64 and 988 SPIs, as a ratio.
$(BENCH_OUT)/vgic_bench: $(BENCH_OUT)/obj/tests/bench/vgic_bench.o $(BENCH_OUT)/obj/hyp/vgic.o
	$(BENCH_CXX) $^ -o $@

# Instructions first: the figures' table takes its instruction column from what they wrote.
bench: $(BENCH_OUT)/iopt_bench $(BENCH_OUT)/iopt_instr $(BENCH_OUT)/smp_bench $(BENCH_OUT)/vgic_bench
	@$(MAKE) --no-print-directory bench-instructions
	IOPT_INSTR=$(BENCH_OUT)/instructions.txt $(BENCH_OUT)/iopt_bench $(BENCH_ARGS)
	@echo
	$(BENCH_OUT)/smp_bench
	@echo
	$(BENCH_OUT)/vgic_bench

# One dump per scenario ("desc: Trigger: Client Request: <name> <pages> <tables>", "totals: <Ir>");
# the first is the pool's zeroing of one page, subtracted per table allocated in the last column.
bench-instructions: $(BENCH_OUT)/iopt_instr
	@rm -f $(BENCH_OUT)/callgrind.out*
	@$(BENCH_CALLGRIND) $(BENCH_OUT)/iopt_instr 2>$(BENCH_OUT)/callgrind.log || { cat $(BENCH_OUT)/callgrind.log; exit 1; }
	@echo
	@echo "Instructions (callgrind). Callgrind counts each byte of the rep-stosb zeroing a new table"
	@echo "as an instruction; the last column leaves the pool's zeroing out."
	@echo
	@echo "| operation | instructions | per page (hot rows: per pair) | tables allocated | of them zeroed | per page without zeroing |"
	@echo "|---|---:|---:|---:|---:|---:|"
	@for f in $$(ls $(BENCH_OUT)/callgrind.out.* | sort -t. -k3 -n); do \
	  awk '/^desc: Trigger: Client Request:/ { name = $$5; pages = $$6; tables = $$7; zeroed = $$8 } \
	       /^(totals|summary):/ { ir = $$2 } \
	       END { if (pages) printf "%s %d %d %d %d\n", name, pages, tables, ir, zeroed }' $$f; \
	done > $(BENCH_OUT)/instructions.tmp
	@awk '{ print $$1, $$4, $$2, $$3, $$5 }' $(BENCH_OUT)/instructions.tmp > $(BENCH_OUT)/instructions.txt
	@awk 'NR == 1 { zero = $$4; printf "| %s | %d | | | | |\n", $$1, $$4; next } \
	  { printf "| %s | %d | %.2f | %d | %d | %.2f |\n", $$1, $$4, $$4 / $$2, $$3, $$5, ($$4 - $$5 * zero) / $$2 }' \
	  $(BENCH_OUT)/instructions.tmp
	@echo
	@echo "Bar (Linux v6.12 io-pgtable-arm, measured elsewhere on this machine): 673 instructions per 4 KiB map + unmap pair,"
	@echo "918 per 16 KiB pair, 328 per scattered unmap, 0.128 per page for an aligned 1 GiB unmap."
