# colo - COLO VM fault tolerance. `make help` lists the targets.
# Outputs go to build/ (build/san/ with SAN=1). V=1 shows full commands.

CC       ?= cc
SAN      ?= 0
BUILD    := build
ifeq ($(SAN),1)
BUILD    := build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif

PKGS     := yajl libnl-3.0 libnl-nf-3.0 libnl-route-3.0 libxxhash
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wno-unused-parameter -fstack-protector-strong \
            -I. $(PKG_CFLAGS) $(SANFLAGS) -MMD -MP
LDFLAGS  += $(SANFLAGS)
LDLIBS   += $(PKG_LIBS) -lm

ifeq ($(V),1)
Q :=
else
Q := @
endif

.DEFAULT_GOAL := all

# Modules in link order (dependents first). Each is a directory of .c files built
# into build/lib<module>.a; files named main-*.c are programs, not library code.
MODULES  := colo net checkpoint qmp lib
# Xen backend (docs/xen-helper.md): the xen/ module and its helper program are
# built whenever Debian's libxen-dev is installed; without it nothing Xen is built.
XEN_PKGS := xencontrol xenguest
HAVE_XEN := $(shell pkg-config --exists $(XEN_PKGS) 2>/dev/null && echo 1)
ifeq ($(HAVE_XEN),1)
MODULES  := $(patsubst checkpoint,xen checkpoint,$(MODULES))
XEN_CFLAGS := $(shell pkg-config --cflags $(XEN_PKGS))
XEN_LIBS := $(shell pkg-config --libs $(XEN_PKGS))
endif
LIBS     := $(foreach m,$(MODULES),$(BUILD)/lib$(m).a)
PROGS    := $(BUILD)/colo-agent $(BUILD)/coloctl $(BUILD)/libcolo-uffd.so
UNIT_SRC := $(wildcard tests/unit/test_*.c)
ifneq ($(HAVE_XEN),1)
UNIT_SRC := $(filter-out tests/unit/test_xen_%.c,$(UNIT_SRC))
endif
UNITS    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
HARNESS  := $(BUILD)/tests/harness.o
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
ifneq ($(HAVE_XEN),1)
FUZZ_SRC := $(filter-out fuzz/fuzz_xen_%.c,$(FUZZ_SRC))
endif
REPLAYS  := $(patsubst fuzz/%.c,$(BUILD)/fuzz-replay/%,$(FUZZ_SRC))
FUZZERS  := $(patsubst fuzz/%.c,$(BUILD)/libfuzzer/%,$(FUZZ_SRC))
BENCH_SRC:= $(wildcard bench/*.c)
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
ITEST_SRC:= $(wildcard tests/integration/itest_*.c)
ITESTS   := $(patsubst tests/integration/%.c,$(BUILD)/itests/%,$(ITEST_SRC))
INTEG    := $(ITESTS) $(sort $(wildcard tests/integration/test-*.sh))

lib_srcs = $(filter-out $(1)/main-%.c,$(wildcard $(1)/*.c))
lib_objs = $(patsubst %.c,$(BUILD)/%.o,$(call lib_srcs,$(1)))
ALL_OBJS := $(foreach m,$(MODULES),$(call lib_objs,$(m)))

# The Xen helper, twice: against the real libraries, and (tests) against the
# stand-in of tests/xen-standin/, which is no evidence that Xen works.
ifeq ($(HAVE_XEN),1)
XEN_STANDIN := $(BUILD)/tests/colo-xen-helper-standin
PROGS    += $(BUILD)/colo-xen-helper $(XEN_STANDIN)
# libxenctrl's headers need GNU C (anonymous unions): only the two files that
# include them get -std=gnu11.
$(BUILD)/xen/xen_runner.o $(BUILD)/tests/xen-standin/standin.o: CFLAGS += $(XEN_CFLAGS) -std=gnu11
$(BUILD)/colo-xen-helper: $(BUILD)/xen/main-xen-helper.o $(LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(XEN_LIBS) $(LDLIBS)
$(XEN_STANDIN): $(BUILD)/xen/main-xen-helper.o $(BUILD)/tests/xen-standin/standin.o $(LIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/tests/xen-standin/standin.o $(LIBS) $(LDLIBS)
# Unit tests that exec the stand-in build of the Xen helper.
$(filter $(BUILD)/tests/test_xen_% $(BUILD)/tests/test_colo_xen_%,$(UNITS)): $(XEN_STANDIN)
endif

.PHONY: all help deps test test-unit test-integration fuzz demo bench clean rig-artefacts
all: $(PROGS) $(UNITS) $(ITESTS) $(REPLAYS) $(BENCHES)

help:
	@echo "make            build programs, tests, fuzz replayers, benches into $(BUILD)/"
	@echo "make deps       install missing Debian packages (root)"
	@echo "make test       unit + integration tests (installs deps, builds rig artefacts)"
	@echo "make test-unit  unit tests and fuzz-corpus replay only (seconds)"
	@echo "make test-integration  tests with real QEMU VMs in network namespaces"
	@echo "make fuzz       libFuzzer targets (clang) into $(BUILD)/libfuzzer/"
	@echo "make demo       a real COLO pair, a client, and a failover drill"
	@echo "make SAN=1 ...  the same with AddressSanitizer + UBSan (outputs in build/san/)"
	@echo "V=1             show full commands"

deps:
	$(Q)tools/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

define module_lib
$(BUILD)/lib$(1).a: $(call lib_objs,$(1))
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  AR      $$@")
	$$(Q)rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_lib,$(m))))

$(BUILD)/colo-agent: $(BUILD)/colo/main-agent.o $(LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

$(BUILD)/coloctl: $(BUILD)/colo/main-coloctl.o $(LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# Loaded into QEMU with LD_PRELOAD: registers guest RAM for userfaultfd dirty
# tracking. Built without sanitizers: it runs inside QEMU, not in our processes.
PRELOAD_SRC := $(wildcard checkpoint/preload/*.c)
$(BUILD)/libcolo-uffd.so: $(PRELOAD_SRC) checkpoint/dirty_wp.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  SO      $@")
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -fPIC -shared \
		-o $@ $(PRELOAD_SRC) -ldl

$(HARNESS): tests/harness/test.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(HARNESS) $(LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(HARNESS) $(LIBS) $(LDLIBS)

# Integration tests in C: like unit tests, but they need the rig (real QEMU, guest).
$(BUILD)/itests/%: $(BUILD)/tests/integration/%.o $(HARNESS) $(LIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(HARNESS) $(LIBS) $(LDLIBS)

# Fuzz targets: a libFuzzer build (make fuzz, clang) and a plain replayer that
# runs the stored corpus in make test under any compiler.
$(BUILD)/fuzz-replay/%: $(BUILD)/fuzz/%.o $(BUILD)/fuzz/replay.o $(LIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/fuzz/replay.o $(LIBS) $(LDLIBS)

FUZZ_CC     := clang
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -I. $(PKG_CFLAGS) \
               -fsanitize=fuzzer,address,undefined
# (Sources, not archives: leave out the Xen runner, whose libxenguest calls no
# fuzz target reaches.)
FUZZ_LIB_SRCS = $(filter-out xen/xen_runner.c,$(foreach m,$(MODULES),$(call lib_srcs,$(m))))
$(BUILD)/libfuzzer/%: fuzz/%.c $(FUZZ_LIB_SRCS)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRCS) $(LDLIBS)

fuzz: $(FUZZERS)
	@echo "fuzzers in $(BUILD)/libfuzzer/; run e.g. $(BUILD)/libfuzzer/fuzz_qmp_reply fuzz/corpus/fuzz_qmp_reply"

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# Replays take the corpus directory from the name: fuzz/corpus/<target>/.
test-unit: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/run-tests.sh $(UNITS) $(REPLAYS)

rig-artefacts: deps
	$(Q)tests/rig/build-qemu.sh >/dev/null
	$(Q)tests/rig/build-guest.sh >/dev/null

# Integration tests find the rig's artefacts through the environment:
# COLO_QEMU (fixed qemu-system-x86_64), COLO_GUEST (dir with vmlinuz, initrd.img),
# COLO_BUILD (this build's output dir).
RIG_ENV = COLO_BUILD=$(BUILD) COLO_QEMU=$$(tests/rig/build-qemu.sh) \
          COLO_GUEST=$$(tests/rig/build-guest.sh)

test-integration: deps
	$(Q)$(MAKE) --no-print-directory all rig-artefacts
	$(Q)$(RIG_ENV) tests/run-tests.sh $(INTEG)

test: deps
	$(Q)$(MAKE) --no-print-directory all rig-artefacts
	$(Q)$(RIG_ENV) tests/run-tests.sh $(UNITS) $(REPLAYS) $(INTEG)

demo: deps
	$(Q)$(MAKE) --no-print-directory all rig-artefacts
	$(Q)$(RIG_ENV) tools/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all rig-artefacts
	$(Q)$(RIG_ENV) bench/run.sh

clean:
	rm -rf build

.SECONDARY:
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
