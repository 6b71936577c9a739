# opstream build.
#   make            core library (lib/) and every program into bin/
#   make deps       install missing Debian 12 packages (no-op when present)
#   make test-deps  the same plus the packages only tests need (prometheus, jq)
#   make test       unit + integration tests and the same under ASan+UBSan, in
#                   parallel (TEST_JOBS), plus the fuzz smoke; logs in build/test-logs/
#   make check-unit / check-integration / check-asan   the parts of make test
#   make clean
# Programs are discovered: every producers/opstream-*/, consumers/opstream-*/
# and tools/opstream-*/ folder is one program built from its *.c files, plus
# the program start-up in startup/ (shared by every program; it may print and
# exit, which lib/ may not).
# Tests are discovered: tests/unit/test_*.c and tests/integration/test_*.c,
# one binary each (integration tests link tests/integration/harness.c).

BUILD   ?= build/release
V       ?= 0
ifeq ($(V),1)
Q :=
else
Q := @
endif
BINDIR  ?= bin
SAN     ?=

PKGS       := rdkafka avro-c hiredis uuid jansson libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CSTD     := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN     := -Wall -Wextra -Wformat=2 -Wno-unused-parameter
ifdef CI
WARN     += -Werror
endif
OPT      ?= -O2 -g
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT      := -O1 -g
endif
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.1.0)
CPPFLAGS += -Iinclude -I$(BUILD)/gen -DOPS_VERSION='"$(VERSION)"'
ALL_CFLAGS  = $(CSTD) $(WARN) $(OPT) $(SANFLAGS) $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)
LIBS        = $(PKG_LIBS) -lpthread -lm

LIB_SRCS  := $(wildcard lib/*.c)
LIB_OBJS  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS)) $(BUILD)/obj/gen/schemas_gen.o
LIBOPS    := $(BUILD)/libopstream.a

PROG_DIRS := $(patsubst %/,%,$(wildcard producers/opstream-*/ consumers/opstream-*/ tools/opstream-*/))
PROGRAMS  := $(notdir $(PROG_DIRS))
PROG_BINS := $(addprefix $(BINDIR)/,$(PROGRAMS))

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))
INTEG_SRCS := $(wildcard tests/integration/test_*.c)
INTEG_BINS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INTEG_SRCS))
HARNESS_OBJ := $(BUILD)/obj/tests/integration/harness.o
# Script tests (tests/scripts/test_*.sh) check the build and test tooling;
# the runner's own test needs a binary that fails on purpose.
SCRIPT_TESTS := $(wildcard tests/scripts/test_*.sh)
FAILING_BIN  := $(BUILD)/tests/integration/failing_on_purpose

.PHONY: all deps test-deps programs tests test check-unit check-integration check-asan clean
.DEFAULT_GOAL := all
# Keep test and program objects between runs (they are not throwaway intermediates).
.SECONDARY:

all: deps
	@$(MAKE) --no-print-directory programs

deps:
	@sh mk/deps.sh
test-deps:
	@OPSTREAM_TEST_DEPS=1 sh mk/deps.sh

programs: $(PROG_BINS)
tests: $(UNIT_BINS) $(INTEG_BINS) $(PROG_BINS) $(FAILING_BIN)

$(BUILD)/gen/schemas_gen.c: mk/embed-schemas.sh $(wildcard schemas/*)
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	$(Q)sh mk/embed-schemas.sh schemas > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/schemas_gen.o: $(BUILD)/gen/schemas_gen.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c | $(BUILD)/gen/schemas_gen.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(LIBOPS): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  AR      $@"
	$(Q)rm -f $@ && $(AR) rcs $@ $^

STARTUP_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard startup/*.c))

define program_rule
$(1)_OBJS := $$(patsubst %.c,$(BUILD)/obj/%.o,$$(wildcard $(2)/*.c))
$$($(1)_OBJS): CPPFLAGS += -Istartup
$(BINDIR)/$(1): $$($(1)_OBJS) $(STARTUP_OBJS) $(LIBOPS)
	@mkdir -p $$(dir $$@)
	@echo "  LD      $$@"
	$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$($(1)_OBJS) $(STARTUP_OBJS) $(LIBOPS) $$(LIBS)
endef
$(foreach d,$(PROG_DIRS),$(eval $(call program_rule,$(notdir $(d)),$(d))))

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(LIBOPS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBOPS) $(LIBS) -lcmocka

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(HARNESS_OBJ) $(LIBOPS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(HARNESS_OBJ) $(LIBOPS) $(LIBS) -lcmocka

# Test runs (mk/run-tests.sh): binaries run several at once, each with its
# own log under build/test-logs/; a line per binary as it ends, then what
# failed and where (cases, assertions, the last lines of the service logs).
RUN_ENV = OPSTREAM_BIN_DIR=$(abspath $(BINDIR)) OPSTREAM_SRC_DIR=$(CURDIR) \
          OPSTREAM_TEST_BUILD=$(abspath $(BUILD)) \
          OPSTREAM_MAKE_VARS="BUILD=$(BUILD) BINDIR=$(BINDIR) SAN=$(SAN)"
SUITE_PREFIX := $(if $(filter 1,$(SAN)),asan-,)

# The integration binaries that take longest start first (in the order of
# their times in make test, longest first).
SLOW_TESTS   := test_consumer_runtime test_count_cluster test_faults test_alert_instances test_count \
                test_first_contact test_count_faults test_alert_stop test_alert test_count_faults_redis \
                test_sentinel test_metrics_count test_produce_faults test_rebalance test_prometheus \
                test_hostile test_alert_link test_demo test_alert_order test_count_link test_produce \
                test_stats test_redis_cluster_router
ORDERED_INTEG := $(foreach t,$(SLOW_TESTS),$(filter %/$(t),$(INTEG_BINS))) \
                 $(filter-out $(addprefix %/,$(SLOW_TESTS)),$(INTEG_BINS))

check-unit: $(UNIT_BINS)
	@$(RUN_ENV) bash mk/run-tests.sh $(SUITE_PREFIX)unit $(UNIT_BINS)

check-integration: $(INTEG_BINS) $(PROG_BINS) $(FAILING_BIN)
	@$(RUN_ENV) bash mk/run-tests.sh --suite $(SUITE_PREFIX)integration $(ORDERED_INTEG) \
	    $(if $(SAN),,--suite scripts $(SCRIPT_TESTS))

# The same suites built and run with AddressSanitizer (LeakSanitizer
# included) and UndefinedBehaviorSanitizer.
ASAN_VARS := SAN=1 BUILD=build/asan BINDIR=build/asan/bin
check-asan:
	@$(MAKE) --no-print-directory $(ASAN_VARS) check-unit check-integration

# make test: builds the release and sanitizer trees and the fuzz targets in
# parallel (-j$(NPROC)), then runs every test binary of both trees in one
# pool (TEST_JOBS at a time, slow ones first) while the fuzz smoke runs (its
# lines follow the tests' when both are done), and prints the time it took
# and the counts: each test case once ("tests:"),
# the sanitizer pass and the fuzz targets on their own lines.
# Eight binaries per core: the integration tests mostly wait (on the
# embedded broker's group rebalances, fault windows of fixed length, the
# programs' own timeouts), so that many at a time still leave the cores
# more than half idle (make test prints its CPU time beside the wall
# clock); the binaries' times added up to about 1,800 s with 8, 12 or 16
# at a time.
NPROC        := $(shell nproc 2>/dev/null || echo 1)
TEST_JOBS    ?= $(shell echo $$(( $(NPROC) * 8 )))
TEST_SUMMARY := $(CURDIR)/build/test-summary.txt
ASAN_DIR     := $(abspath build/asan/bin)
REL_DIR      := $(abspath $(BINDIR))
to_asan       = $(patsubst $(BUILD)/%,build/asan/%,$(1))
ASAN_MAKE_VARS = --env 'OPSTREAM_MAKE_VARS=BUILD=build/asan BINDIR=build/asan/bin SAN=1'
TEST_ARGS     = $(foreach t,$(ORDERED_INTEG),\
                  --suite asan-integration --bin-dir $(ASAN_DIR) $(ASAN_MAKE_VARS) $(call to_asan,$(t)) \
                  --suite integration --bin-dir $(REL_DIR) $(t)) \
                --suite asan-unit --bin-dir $(ASAN_DIR) $(call to_asan,$(UNIT_BINS)) \
                --suite unit --bin-dir $(REL_DIR) $(UNIT_BINS) \
                --suite scripts $(SCRIPT_TESTS)

test-build-release:
	@$(MAKE) -s --no-print-directory tests
test-build-asan:
	@$(MAKE) -s --no-print-directory $(ASAN_VARS) tests
test-build-fuzz:
	@sh mk/fuzz.sh build
test-build: test-build-release test-build-asan test-build-fuzz

test: test-deps
	@mkdir -p build && rm -f $(TEST_SUMMARY); t0=$$(date +%s); \
	$(MAKE) --no-print-directory -j$(NPROC) test-build || exit 1; \
	echo "make test: built in $$(( $$(date +%s) - t0 )) s; running the tests, $(TEST_JOBS) at a time"; \
	mkdir -p build/test-logs; \
	OPSTREAM_TEST_SUMMARY=$(TEST_SUMMARY) sh mk/fuzz.sh smoke-run >build/test-logs/fuzz.log 2>&1 & fuzz=$$!; \
	$(RUN_ENV) OPSTREAM_TEST_SUMMARY=$(TEST_SUMMARY) bash mk/run-tests.sh -j $(TEST_JOBS) $(TEST_ARGS); \
	wait $$fuzz; cat build/test-logs/fuzz.log; \
	times >build/test-times.txt; \
	echo "make test: $$(( $$(date +%s) - t0 )) s wall clock, $$(awk -f mk/cpu-seconds.awk build/test-times.txt) s CPU (user+sys of everything it ran), load average $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	sh mk/test-summary.sh $(TEST_SUMMARY)
.PHONY: test-build test-build-release test-build-asan test-build-fuzz

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)

# docker-compose.yml is checked with Debian's docker-compose (installed when
# missing); no Docker engine is needed for the check.
compose-check:
	@OPSTREAM_DEPS=docker-compose sh mk/deps.sh
	docker-compose -f docker-compose.yml config -q && echo "compose-check: docker-compose.yml is valid"
.PHONY: compose-check

# The whole pipeline on the embedded default (or BROKERS= / REDIS= for real
# services); DEMO_SECONDS sets the length of the simulated traffic.
demo: deps
	@$(MAKE) --no-print-directory programs
	@BROKERS="$(BROKERS)" REDIS="$(REDIS)" OPSTREAM_BIN_DIR=$(BINDIR) bash mk/demo.sh
.PHONY: demo

# The README's tour pasted into a fresh interactive bash (in tmux) twice in
# a row, checking what the terminal shows (mk/tour-check.sh). Uses the
# tour's port 6391 and /tmp/ops.bootstrap.
tour-check: programs
	@OPSTREAM_DEPS=tmux sh mk/deps.sh
	@bash mk/tour-check.sh $(BINDIR)
.PHONY: tour-check

# Fuzzing: libFuzzer targets in tests/fuzz/ built with clang (ASan+UBSan)
# against the core compiled with clang in build/fuzz (mk/fuzz.sh). `make
# fuzz` runs each target FUZZ_SECONDS; `make fuzz-smoke` (part of make test)
# a few seconds each. `make check-long` runs the hostile-input and fault
# tests in their long forms (OPSTREAM_LONG=1: 100,000 hostile messages,
# more kill rounds).
FUZZ_SECONDS ?= 120
fuzz:
	@sh mk/fuzz.sh run $(FUZZ_SECONDS)
fuzz-smoke:
	@sh mk/fuzz.sh smoke
LONG_BINS := $(filter $(BUILD)/tests/integration/test_hostile% $(BUILD)/tests/integration/test_faults%,$(INTEG_BINS))
check-long: $(LONG_BINS) $(PROG_BINS)
	@OPSTREAM_LONG=1 $(RUN_ENV) bash mk/run-tests.sh long $(LONG_BINS)
.PHONY: fuzz fuzz-smoke check-long

# Benchmark (not part of make test): `make bench` starts the embedded broker
# and a redis-server, prints a table (median of BENCH_RUNS runs, targets,
# PASS/MISS) and writes bench/results.json. BENCH_QUICK=1: a fast sanity run.
# The bench program links the integration harness for process control.
BENCH_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/*.c))
BENCH_BIN  := $(BUILD)/bench/opstream-bench
BENCH_RUNS ?= 3
$(BENCH_OBJS): CPPFLAGS += -Itests/integration
$(BENCH_BIN): $(BENCH_OBJS) $(HARNESS_OBJ) $(LIBOPS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(BENCH_OBJS) $(HARNESS_OBJ) $(LIBOPS) $(LIBS)
bench: deps
	@$(MAKE) --no-print-directory programs $(BENCH_BIN)
	@$(RUN_ENV) $(BENCH_BIN) --runs $(BENCH_RUNS) $(if $(BENCH_QUICK),--quick --runs 1) --json bench/results.json
.PHONY: bench
