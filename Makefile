# obs suite -- top-level Makefile
#
# Targets (make help prints this header):
#   make                 build every daemon, the demo app and tools into build/bin/
#   make <daemon>        build one of: metricsd logd traced alertd agentd collectord demo-app
#   make test            install deps, build with ASan+UBSan, run unit + integration tests
#   make test-unit       Check unit tests only (tests/unit/**/test_*.c, one binary each)
#   make test-integration  real binaries on random loopback ports (tests/integration/)
#   make conformance     run the upstream conformance suites from ../shared/conformance
#   make lab             install deps, build, run the local lab in the foreground (Ctrl-C stops)
#   make lab-up|lab-down start/stop the lab in the background (pids and data under .lab/)
#   make deps            install system packages and npm test tools (scripts/install-deps)
#   make lint | format   cppcheck / clang-format over the sources
#   make clean           remove build/
#
# Variables:
#   V=1                  echo full commands
#   SANITIZER=address    build with -fsanitize=address,undefined into build/san-address/
#   SANITIZER=undefined  build with -fsanitize=undefined into build/san-undefined/
#   ERR=0                drop -Werror (on by default)
#   BUILD=dir            build tree (default build/, or build/san-<sanitizer>/)
#
# Layout: common/ -> build/libobs.a; <daemon>/*.c minus main.c -> build/lib<daemon>.a;
# proto/*.proto -> build/gen/proto/*.pb-c.[ch] (protoc-c, never hand-edited).

SHELL      := /bin/bash
CC         ?= gcc
DAEMONS    := metricsd logd traced alertd agentd collectord
SANITIZER  ?=
ERR        ?= 1

ifeq ($(SANITIZER),)
BUILD      ?= build
else
BUILD      ?= build/san-$(SANITIZER)
endif
BIN        := $(BUILD)/bin
GEN        := $(BUILD)/gen

PKGS       := libevent libevent_pthreads grpc libprotobuf-c yaml-0.1 jansson liblz4 libzstd \
              libcurl libpcre2-8 libxxhash snappy zlib libcrypto check
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lroaring -lpthread -lm

CFLAGS     := -std=c11 -D_GNU_SOURCE -g -O2 -Wall -Wextra -Wno-unused-parameter \
              -Wno-missing-field-initializers -fno-strict-aliasing -pthread \
              -Icommon -I$(GEN) -I. $(PKG_CFLAGS)
ifeq ($(ERR),1)
CFLAGS     += -Werror
endif
LDFLAGS    := -pthread
ifeq ($(SANITIZER),address)
CFLAGS     += -O1 -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined,float-cast-overflow
LDFLAGS    += -fsanitize=address,undefined,float-cast-overflow
endif
ifeq ($(SANITIZER),undefined)
CFLAGS     += -fsanitize=undefined -fno-sanitize-recover=undefined
LDFLAGS    += -fsanitize=undefined
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

# --- sources -------------------------------------------------------------------------------
PROTOS      := $(wildcard proto/*.proto)
PROTO_C     := $(patsubst proto/%.proto,$(GEN)/proto/%.pb-c.c,$(PROTOS))
PROTO_H     := $(PROTO_C:.c=.h)
COMMON_SRC  := $(shell find common -name '*.c' 2>/dev/null | sort)
COMMON_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRC)) \
               $(patsubst $(GEN)/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))
LIBOBS      := $(BUILD)/libobs.a

define daemon_rules
$(1)_SRC  := $$(shell find $(1) -name '*.c' ! -name main.c 2>/dev/null | sort)
$(1)_OBJ  := $$(patsubst %.c,$(BUILD)/obj/%.o,$$($(1)_SRC))
$(BUILD)/lib$(1).a: $$($(1)_OBJ)
	@mkdir -p $$(@D)
	@rm -f $$@
	$(Q)ar rcs $$@ $$^ $$(if $$^,,)
$(BIN)/$(1): $(BUILD)/obj/$(1)/main.o $(BUILD)/lib$(1).a $(LIBOBS)
	@mkdir -p $$(@D)
	@echo "  LD      $$@"
	$(Q)$(CC) $(LDFLAGS) -o $$@ $$^ $(PKG_LIBS)
$(1): $(BIN)/$(1)
.PHONY: $(1)
endef
$(foreach d,$(DAEMONS),$(eval $(call daemon_rules,$(d))))
DAEMON_LIBS := $(foreach d,$(DAEMONS),$(BUILD)/lib$(d).a)

DEMO_SRC    := $(wildcard examples/demo-app/*.c)
DEMO_OBJ    := $(patsubst %.c,$(BUILD)/obj/%.o,$(DEMO_SRC))
TOOL_SRC    := $(wildcard tests/support/*.c) $(wildcard bench/*.c)
TOOLS       := $(patsubst %.c,$(BIN)/%,$(notdir $(TOOL_SRC)))
UNIT_SRC    := $(shell find tests/unit -name 'test_*.c' 2>/dev/null | sort)
UNIT_BIN    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

ALL_BINS    := $(foreach d,$(DAEMONS),$(BIN)/$(d)) $(BIN)/demo-app $(TOOLS)

# --- build ---------------------------------------------------------------------------------
all: $(ALL_BINS)
.PHONY: all help test test-unit test-integration conformance lab lab-up lab-down deps clean \
        demo-app tools unit-bins lint format

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

# Recompile everything when the flags change (the flags file records them).
$(BUILD)/.flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $@
FORCE:

# Generated sources are not intermediates: keep them.
.SECONDARY: $(PROTO_C) $(PROTO_H)

$(GEN)/proto/%.pb-c.c $(GEN)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	@echo "  PROTOC  $<"
	$(Q)protoc-c --c_out=$(GEN) --proto_path=. $<

$(BUILD)/obj/gen/%.o: $(GEN)/%.c $(BUILD)/.flags | $(PROTO_H)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -Wno-unused-parameter -MMD -MP -c -o $@ $<

# Every object may include generated proto headers, so they exist before any compile.
$(BUILD)/obj/%.o: %.c $(BUILD)/.flags | $(PROTO_H)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIBOBS): $(COMMON_OBJ)
	@mkdir -p $(@D)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BIN)/demo-app: $(DEMO_OBJ) $(LIBOBS)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
demo-app: $(BIN)/demo-app

define tool_rule
$(BIN)/$(basename $(notdir $(1))): $(BUILD)/obj/$(basename $(1)).o $(DAEMON_LIBS) $(LIBOBS)
	@mkdir -p $$(@D)
	@echo "  LD      $$@"
	$(Q)$(CC) $(LDFLAGS) -o $$@ $$< $(DAEMON_LIBS) $(LIBOBS) $(PKG_LIBS)
endef
$(foreach t,$(TOOL_SRC),$(eval $(call tool_rule,$(t))))
tools: $(TOOLS)

# A unit test under tests/unit/<daemon>/ links that daemon's library; tests/unit/common/ only libobs.
define unit_rule
$(BUILD)/tests/$(1)/%: $(BUILD)/obj/tests/unit/$(1)/%.o $(if $(filter $(1),$(DAEMONS)),$(BUILD)/lib$(1).a) $(LIBOBS)
	@mkdir -p $$(@D)
	@echo "  LD      $$@"
	$(Q)$(CC) $(LDFLAGS) -o $$@ $$^ $(PKG_LIBS)
endef
$(foreach d,common $(DAEMONS),$(eval $(call unit_rule,$(d))))
unit-bins: $(UNIT_BIN)

# --- tests ---------------------------------------------------------------------------------
# `make test` is the README's test command and what CI runs: deps, sanitizer build, all tests.
test: deps
	$(MAKE) -j2 SANITIZER=address all unit-bins
	$(MAKE) SANITIZER=address test-unit fuzz-replay test-integration

test-unit: $(UNIT_BIN)
	@scripts/run-unit-tests $(BUILD)/tests

test-integration: $(ALL_BINS)
	@OBS_BIN=$(abspath $(BIN)) scripts/run-integration-tests

conformance: all
	@OBS_BIN=$(abspath $(BIN)) scripts/run-conformance

deps:
	@scripts/install-deps

# The lab needs the daemons and the demo app only (not the test tools).
LAB_BINS := $(foreach d,$(DAEMONS),$(BIN)/$(d)) $(BIN)/demo-app
lab: deps
	$(MAKE) -j2 $(LAB_BINS)
	@scripts/lab run

lab-up: deps
	$(MAKE) -j2 $(LAB_BINS)
	@scripts/lab up

lab-down:
	@scripts/lab down

# Static checks: cppcheck over the sources; format rewrites them with .clang-format.
lint:
	cppcheck --quiet --std=c11 --enable=warning,portability --inline-suppr \
	  --suppress=missingIncludeSystem -Icommon common $(DAEMONS) examples

format:
	clang-format -i $$(find common $(DAEMONS) examples tests -name '*.[ch]')

clean:
	rm -rf build

# --- fuzz (owned by the fuzz helper: tests/fuzz/; edit only between these markers) --------
# tests/fuzz/fuzz_<name>.c each define LLVMFuzzerTestOneInput (STYLE.md rule 18); the seed
# corpus of each is tests/fuzz/corpus/<name>/ (committed; crash reproducers are crash-*).
#   make fuzz-replay     build every target with $(CC) + tests/fuzz/driver.c into
#                        $(BUILD)/fuzz/ and replay its corpus; fails on any crash, sanitizer
#                        report or leak (`make test` runs it with SANITIZER=address)
#   make fuzz            build with clang -fsanitize=fuzzer,address,undefined into
#                        build/fuzz-libfuzzer/ and run each target for FUZZ_SECONDS (default 30);
#                        FUZZ_TARGETS="logql wal" picks targets; new inputs go to
#                        build/fuzz-libfuzzer/corpus/<name>/, crashes to .../artifacts/<name>/;
#                        FUZZ_SKIP_KNOWN=1 (environment) steps around bugs that already have a
#                        crash-* reproducer, so a run can look past them
FUZZ_SRC      := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES    := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_BIN      := $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_NAMES))
FUZZ_SECONDS  ?= 30
FUZZ_TARGETS  ?= $(FUZZ_NAMES)
FUZZ_BUILD    := build/fuzz-libfuzzer
FUZZ_SAN_ENV  := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
                 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                 LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp)
LIBFUZZER     ?= 0
ifeq ($(LIBFUZZER),1)
# Set only by `make fuzz` for its clang sub-make: coverage instrumentation everywhere,
# libFuzzer supplies main().
CFLAGS        += -fsanitize=fuzzer-no-link
FUZZ_MAIN     :=
FUZZ_LDFLAGS  := -fsanitize=fuzzer
else
FUZZ_MAIN     := $(BUILD)/obj/tests/fuzz/driver.o
FUZZ_LDFLAGS  :=
endif

$(BUILD)/fuzz/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_MAIN) $(DAEMON_LIBS) $(LIBOBS)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $(FUZZ_LDFLAGS) -o $@ $< $(FUZZ_MAIN) $(DAEMON_LIBS) $(LIBOBS) \
	  $(PKG_LIBS)

# Keep the objects (they are intermediates of the pattern rule above).
.SECONDARY: $(patsubst %.c,$(BUILD)/obj/%.o,$(FUZZ_SRC) tests/fuzz/driver.c)

fuzz-bins: $(FUZZ_BIN)

fuzz-replay: $(FUZZ_BIN)
	@mkdir -p $(BUILD)/fuzz/log; fail=""; for n in $(FUZZ_NAMES); do \
	  mkdir -p tests/fuzz/corpus/$$n; log=$(BUILD)/fuzz/log/fuzz_$$n.log; \
	  if FUZZ_VERBOSE=1 FUZZ_SKIP_KNOWN=0 $(FUZZ_SAN_ENV) timeout 600 $(BUILD)/fuzz/fuzz_$$n \
	       tests/fuzz/corpus/$$n > $$log 2>&1; then tail -1 $$log; \
	  else fail="$$fail fuzz_$$n"; grep -v '^fuzz: tests/' $$log | tail -25; \
	    echo "fuzz_$$n: FAILED on $$(grep '^fuzz: tests/' $$log | tail -1 | cut -d' ' -f2)"; fi; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz-replay: FAILED:$$fail"; exit 1; fi; \
	echo "fuzz-replay: $(words $(FUZZ_NAMES)) targets ok"

fuzz:
	@command -v clang >/dev/null || { echo "fuzz: installing clang"; \
	  sudo -n apt-get install -y clang || apt-get install -y clang; }
	$(MAKE) CC=clang ERR=0 SANITIZER=address LIBFUZZER=1 BUILD=$(FUZZ_BUILD) \
	  $(patsubst %,$(FUZZ_BUILD)/fuzz/fuzz_%,$(FUZZ_TARGETS))
	@fail=""; for n in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$n $(FUZZ_BUILD)/artifacts/$$n tests/fuzz/corpus/$$n; \
	  dict=; [ -f tests/fuzz/$$n.dict ] && dict=-dict=tests/fuzz/$$n.dict; \
	  echo "  FUZZ    $$n ($(FUZZ_SECONDS)s)"; \
	  $(FUZZ_SAN_ENV) timeout $$(( $(FUZZ_SECONDS) + 120 )) \
	    $(FUZZ_BUILD)/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 $$dict \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$n/ \
	    $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n \
	    > $(FUZZ_BUILD)/fuzz_$$n.log 2>&1 || fail="$$fail $$n"; \
	  grep -E '^stat::number_of_executed_units|^SUMMARY|^==.*ERROR' $(FUZZ_BUILD)/fuzz_$$n.log \
	    | sed 's/^/          /'; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: findings in:$$fail (logs: $(FUZZ_BUILD)/fuzz_<name>.log)"; \
	  exit 1; fi

.PHONY: fuzz fuzz-replay fuzz-bins
# --- end fuzz ------------------------------------------------------------------------------

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
