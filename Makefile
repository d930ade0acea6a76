# pgslab -- build, tests, demo and benchmarks.
#
#   make            build ./pgslab (gcc, -O2 -g, warnings are errors)
#   make check      install what is missing, build, run every test under prove
#   make demo       build, throw-away PostgreSQL, pgslab in front, pgbench, admin view
#   make asan       build with -fsanitize=address,undefined + slab debug, run unit tests
#   make fuzz-protocol SECONDS=600 [SEED=n] [PGSLAB=path]
#                   randomized differential protocol test, direct vs through pgslab
#   make soak SECONDS=600 [SEED=n] [PGSLAB=path] [WRITERS=n] [VALGRIND=1]
#                   fault-injection ledger test, long run (075_ledger.pl is the short one)
#   make fuzz-smoke   every libFuzzer target (test/fuzz/) for FUZZ_SMOKE_SECONDS each
#   make fuzz FUZZ_SECONDS=600 [FUZZ_TARGETS=fuzz_x]   longer libFuzzer runs
#   make bench        pgslab vs PgBouncer vs direct PostgreSQL (report in bench/results/)
#   make bench-quick  a short subset of make bench
#   make bench-alloc  slab caches vs glibc vs jemalloc vs mimalloc
#   make bench-log    connection churn: async log writer vs -DLOG_SYNC_WRITE build
#   make bench-budget backend-slot sharing (cold start, fairness) vs PgBouncer
#   make bench-budget-cost  fair-share cost with 1,000 pools (part of bench-budget)
#   make docker-test  build docker/Dockerfile with podman, run it against PostgreSQL
#   make install      binary, man pages, example config, systemd unit (PREFIX, DESTDIR)
#   make uninstall    remove what make install put there
#
# Every src/*.c except main.c and log_test.c (the logger's test hooks, which
# only its unit test links) goes into build/<variant>/libpgslab.a; every
# test/unit/t_*.c becomes an executable printing TAP, linked against the
# objects of its module and the layers below (UNIT_DEPS_* below).

ifeq ($(origin CC),default)
CC       := gcc
endif
PKGS     := libevent openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# libpq only for tests and benchmarks (t_pwd compares with PQencryptPassword,
# bench_idle holds connections); pgslab itself does not link it.
TEST_CFLAGS := $(shell pkg-config --cflags libpq 2>/dev/null)
TEST_LIBS   := $(shell pkg-config --libs libpq 2>/dev/null)

BUILD    ?= build/rel
OPT      ?= -O2
CFLAGS   := -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation \
            -Wstrict-prototypes -Wmissing-prototypes -fno-strict-aliasing \
            -D_GNU_SOURCE -iquote include $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS  += $(EXTRA_LDFLAGS)
LIBS     := $(PKG_LIBS) -lpthread -lm
PROG     ?= pgslab

SRCS     := $(filter-out src/main.c src/log_test.c,$(wildcard src/*.c))
OBJS     := $(SRCS:src/%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libpgslab.a
# Built only as t_log's prerequisite: kept, not deleted as an intermediate.
.SECONDARY: $(BUILD)/log_test.o
UNIT_SRCS := $(wildcard test/unit/t_*.c)
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(BUILD)/test/%)

# Debian packages the build, the tests, the demo and the benchmarks need.
DEB_PKGS := gcc make pkg-config perl libevent-dev libssl-dev libpq-dev \
            postgresql-15 postgresql-client-15 libdbd-pg-perl libio-socket-ssl-perl python3-psycopg2 \
            pgbouncer valgrind strace procps libjemalloc-dev libmimalloc-dev gnuplot-nox \
            prometheus pandoc clang libclang-rt-dev python3-psycopg python3-asyncpg \
            libpostgresql-jdbc-java default-jre-headless
# Checked by command, not package: a Node.js from elsewhere (NodeSource)
# provides npm itself and conflicts with Debian's npm package.
DEB_CMDS := node:nodejs npm:npm

.PHONY: all deps check unit-check prove-check asan asan-check demo bench-alloc bench-log bench-budget bench-budget-cost \
        clean format cppcheck docker-deps docker-test man install uninstall

all: $(PROG)

$(PROG): $(BUILD)/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(LIB): $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# Each unit test links its module and the layers below it, nothing else
# (no stubs): UNIT_DEPS_<test> names the src/*.c modules, lowest last.
UNIT_DEPS_t_buddy     := buddy sysalloc
UNIT_DEPS_t_budget    := budget buddy sysalloc
UNIT_DEPS_t_config    := config_load config connstr textfile sysalloc
UNIT_DEPS_t_connstr   := connstr
UNIT_DEPS_t_crypto    := crypto
UNIT_DEPS_t_hba       := hba ident hbatok textfile sysalloc
UNIT_DEPS_t_hist      := hist
UNIT_DEPS_t_log       := log_test log_sync log slab buddy sysalloc
UNIT_DEPS_t_nametab   := nametab sysalloc
UNIT_DEPS_t_pool      := pool server client db dns cancel prepwire prep vars cred userlist hba ident hbatok \
                         config_load config connstr stream tls track proto log budget slab buddy nametab \
                         scram_server scram_client pwd scram saslprep crypto textfile sysalloc
UNIT_DEPS_t_prep      := prep slab buddy sysalloc
UNIT_DEPS_t_pwd       := pwd scram saslprep crypto
UNIT_DEPS_t_saslprep  := saslprep
UNIT_DEPS_t_scram     := scram scram_server scram_client saslprep crypto
UNIT_DEPS_t_sdnotify  := sdnotify
UNIT_DEPS_t_slab      := slab buddy sysalloc
UNIT_DEPS_t_slab_rss  := slab buddy sysalloc
UNIT_DEPS_t_track     := track slab buddy sysalloc
UNIT_DEPS_t_tls       := tls
UNIT_DEPS_t_userlist  := userlist pwd scram saslprep crypto textfile sysalloc

unit_objs = $(if $(UNIT_DEPS_$(1)),$(patsubst %,$(BUILD)/%.o,$(UNIT_DEPS_$(1))),$(error no UNIT_DEPS_$(1) in the Makefile))

.SECONDEXPANSION:
$(BUILD)/test/%: test/unit/%.c test/unit/tap.h test/unit/testutil.h $$(call unit_objs,$$*)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -Itest/unit $(LDFLAGS) -o $@ $< $(call unit_objs,$*) $(LIBS) $(TEST_LIBS)

-include $(OBJS:.o=.d) $(BUILD)/main.d $(BUILD)/log_test.d

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done; \
	for c in $(DEB_CMDS); do command -v $${c%%:*} >/dev/null 2>&1 || echo $${c#*:}; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y $$missing; \
	fi
	@# the Node.js drivers test/t/074_prep_drivers.pl runs, as pinned in test/node
	@[ test/node/node_modules/.package-lock.json -nt test/node/package-lock.json ] || \
		npm ci --prefix test/node --no-audit --no-fund

unit-build: $(UNIT_BINS)

unit-check: $(UNIT_BINS)
	prove -e '' $(UNIT_BINS)

prove-check: $(PROG)
	PGSLAB=$(CURDIR)/$(PROG) prove -I test/perl $(or $(PROVE_TESTS),test/t/*.pl)

# One prove run over unit tests and integration tests, so the closing
# summary counts everything.
check: deps
	$(MAKE) $(PROG) unit-build
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then $(MAKE) fuzz-smoke; \
	else echo "fuzz-smoke skipped: no $(FUZZ_CC)"; fi
	PGSLAB=$(CURDIR)/$(PROG) prove -I test/perl \
		$(UNIT_BINS) $(or $(PROVE_TESTS),test/t/*.pl)

asan:
	$(MAKE) BUILD=build/asan PROG=pgslab-asan OPT=-O1 \
		EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -DSLAB_DEBUG" \
		EXTRA_LDFLAGS="-fsanitize=address,undefined" pgslab-asan unit-check

# The valgrind test needs the uninstrumented binary (ASan and memcheck exclude
# each other); make check runs it.
asan-check: deps
	$(MAKE) asan
	PGSLAB=$(CURDIR)/pgslab-asan prove -I test/perl \
		$(or $(PROVE_TESTS),$(filter-out test/t/092_valgrind.pl,$(wildcard test/t/*.pl)))

# Long runs of the differential protocol test (070_differential.pl is the
# bounded one).  PGSLAB=$(CURDIR)/pgslab-asan after make asan runs it under
# ASan/UBSan; without PGSLAB, ./pgslab is built and used.
.PHONY: fuzz-protocol
fuzz-protocol: $(if $(PGSLAB),,$(PROG))
	PGSLAB=$(or $(PGSLAB),$(CURDIR)/$(PROG)) perl -I test/perl test/fuzz_protocol.pl \
		--seconds $(or $(SECONDS),300) $(if $(SEED),--seed $(SEED)) $(if $(CLIENTS),--clients $(CLIENTS))

# Long runs of the fault-injection ledger test (075_ledger.pl is the bounded
# one): writers and pgbench through pgslab under a chaos schedule, then the
# ledger, counters, slabs and fds are checked.  PGSLAB as for fuzz-protocol.
.PHONY: soak
soak: $(if $(PGSLAB),,$(PROG))
	PGSLAB=$(or $(PGSLAB),$(CURDIR)/$(PROG)) perl -I test/perl test/soak.pl \
		--seconds $(or $(SECONDS),600) $(if $(SEED),--seed $(SEED)) $(if $(WRITERS),--writers $(WRITERS)) \
		$(if $(VALGRIND),--valgrind)

# ---- libFuzzer targets (test/fuzz/fuzz_*.c) ----
# Built with clang and -fsanitize=fuzzer,address,undefined into build/fuzz/;
# each target links only the modules it reads (FUZZ_DEPS_<target>, like
# UNIT_DEPS), compiled with the same sanitizers plus coverage
# instrumentation.  Seeds: test/fuzz/corpus/<target>/ (committed, small);
# dictionaries: test/fuzz/<target>.dict; past crashes: test/fuzz/crashes/
# <target>/ (replayed first, every run).  New corpus entries go to
# build/fuzz/corpus/<target>/, kept between runs.
#   make fuzz-smoke   FUZZ_SMOKE_SECONDS (12) per target: 13 targets, 3m40s with the build
#                     measured (loaded 2-core machine) + ~1 min first build;
#                     part of make check
#   make fuzz         FUZZ_SECONDS (600) per target
# Either fails when a target crashes, leaks, times out or trips a sanitizer,
# and prints each target's executions, coverage and corpus size.
FUZZ_CC       ?= clang
FUZZ_BUILD    := build/fuzz
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   := -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter \
                 -D_GNU_SOURCE -DSLAB_DEBUG -Iinclude -Itest/fuzz $(PKG_CFLAGS) $(FUZZ_SAN)
FUZZ_TARGETS  ?= $(patsubst test/fuzz/%.c,%,$(wildcard test/fuzz/fuzz_*.c))
FUZZ_SMOKE_SECONDS ?= 12
FUZZ_SECONDS  ?= 600

FUZZ_DEPS_fuzz_startup       := proto
FUZZ_DEPS_fuzz_proto         := proto
FUZZ_DEPS_fuzz_track         := track slab buddy sysalloc
FUZZ_DEPS_fuzz_stream        := stream tls track proto slab buddy sysalloc
FUZZ_DEPS_fuzz_scram_server  := scram scram_server scram_client saslprep crypto
FUZZ_DEPS_fuzz_scram_client  := scram scram_server scram_client saslprep crypto
FUZZ_DEPS_fuzz_pwd           := pwd scram saslprep crypto
FUZZ_DEPS_fuzz_config        := config_load config connstr textfile sysalloc
FUZZ_DEPS_fuzz_userlist      := userlist pwd scram saslprep crypto textfile sysalloc
FUZZ_DEPS_fuzz_connstr       := connstr
FUZZ_DEPS_fuzz_admin_cmd     := admincmd config connstr textfile sysalloc
FUZZ_DEPS_fuzz_hba           := hba ident hbatok textfile sysalloc
FUZZ_DEPS_fuzz_prep          := prep slab buddy sysalloc

fuzz_objs = $(if $(FUZZ_DEPS_$(1)),$(patsubst %,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_DEPS_$(1))),$(error no FUZZ_DEPS_$(1) in the Makefile))

$(FUZZ_BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/bin/%: test/fuzz/%.c test/fuzz/fuzz.h $$(call fuzz_objs,$$*)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(call fuzz_objs,$*) $(LIBS)

-include $(wildcard $(FUZZ_BUILD)/obj/*.d)

.PHONY: fuzz-build fuzz-smoke fuzz
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/bin/%)

fuzz-smoke: fuzz-build
	test/fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

fuzz: fuzz-build
	test/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

demo: deps $(PROG)
	perl -I test/perl test/demo.pl

bench-alloc: deps
	$(MAKE) $(BUILD)/bench_alloc
	$(BUILD)/bench_alloc

$(BUILD)/bench_alloc: bench/bench_alloc.c $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LIBS) -ldl

# make bench: pgslab vs PgBouncer vs direct PostgreSQL 15, and pgslab vs
# pgslab-malloc (every slab cache bypassed to malloc/free); < 15 min.
# make bench-quick: a subset in a couple of minutes.  Report, runs.csv and
# chart.png in bench/results/; BENCH_ARGS adds options (bench/bench.pl --help).
.PHONY: bench bench-quick
bench: deps
	$(MAKE) $(PROG) pgslab-malloc $(BUILD)/bench_idle
	perl bench/bench.pl --pgslab ./$(PROG) --pgslab-malloc ./pgslab-malloc \
		--idle-client $(BUILD)/bench_idle $(BENCH_ARGS)

bench-quick: deps
	$(MAKE) $(PROG) pgslab-malloc $(BUILD)/bench_idle
	perl bench/bench.pl --quick --pgslab ./$(PROG) --pgslab-malloc ./pgslab-malloc \
		--idle-client $(BUILD)/bench_idle $(BENCH_ARGS)

ifneq ($(PROG),pgslab-malloc)
.PHONY: pgslab-malloc
pgslab-malloc:
	$(MAKE) BUILD=build/malloc PROG=pgslab-malloc EXTRA_CFLAGS=-DSLAB_BYPASS pgslab-malloc
endif

$(BUILD)/bench_idle: bench/bench_idle.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS) $(TEST_LIBS)

# Backend-slot sharing: cold start, fairness, late pools; pgslab vs PgBouncer.
bench-budget: deps $(PROG) bench-budget-cost
	PGSLAB=$(CURDIR)/$(PROG) perl -I test/perl bench/budget_bench.pl

# Fair-share cost with 1,000 pools in one budget (BENCH_POOLS, BENCH_SLOTS).
bench-budget-cost: $(BUILD)/bench_budget
	$(BUILD)/bench_budget

$(BUILD)/bench_budget: bench/bench_budget.c $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LIBS)

# The baseline writes each log record synchronously in the event loop.
bench-log: deps
	$(MAKE) $(PROG)
	$(MAKE) BUILD=build/synclog PROG=pgslab-synclog EXTRA_CFLAGS=-DLOG_SYNC_WRITE pgslab-synclog
	PGSLAB=$(CURDIR)/$(PROG) PGSLAB_SYNCLOG=$(CURDIR)/pgslab-synclog perl bench/log_bench.pl

# make install / uninstall: PREFIX (default /usr/local) and DESTDIR (staging
# root for packaging).  Man pages are built from doc/*.md with pandoc.
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   := $(PREFIX)/bin
MANDIR   := $(PREFIX)/share/man
DOCDIR   := $(PREFIX)/share/doc/pgslab
UNITDIR  := $(PREFIX)/lib/systemd/system
SYSUSERSDIR := $(PREFIX)/lib/sysusers.d
MANS     := build/man/pgslab.1 build/man/pgslab.ini.5
DOCS     := conf/pgslab.ini conf/userlist.txt README.md

man: $(MANS)

build/man/%: doc/%.md
	@mkdir -p $(dir $@)
	pandoc --standalone --from markdown-smart --to man -o $@ $<

# The unit's ExecStart names the installed binary; the target is always
# rebuilt because PREFIX may differ from the last run.
.PHONY: build/pgslab.service
build/pgslab.service: conf/pgslab.service.in
	@mkdir -p $(dir $@)
	sed 's|@BINDIR@|$(BINDIR)|g' $< > $@

install: $(PROG) $(MANS) build/pgslab.service
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 0755 $(PROG) $(DESTDIR)$(BINDIR)/pgslab
	install -m 0644 build/man/pgslab.1 $(DESTDIR)$(MANDIR)/man1/pgslab.1
	install -m 0644 build/man/pgslab.ini.5 $(DESTDIR)$(MANDIR)/man5/pgslab.ini.5
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	install -m 0644 build/pgslab.service $(DESTDIR)$(DOCDIR)/pgslab.service
	install -m 0644 build/pgslab.service $(DESTDIR)$(UNITDIR)/pgslab.service
	install -m 0644 conf/pgslab.sysusers $(DESTDIR)$(SYSUSERSDIR)/pgslab.conf

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pgslab $(DESTDIR)$(MANDIR)/man1/pgslab.1 \
		$(DESTDIR)$(MANDIR)/man5/pgslab.ini.5 $(DESTDIR)$(UNITDIR)/pgslab.service \
		$(DESTDIR)$(SYSUSERSDIR)/pgslab.conf
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)) pgslab.service)
	-rmdir $(DESTDIR)$(DOCDIR)

# make docker-test: debootstrap a Debian 12 base (cached in PGSLAB_DOCKER_CACHE,
# default ~/.cache/pgslab-docker), podman build docker/Dockerfile with chroot
# isolation, run the image's pgslab with buildah against a throw-away
# PostgreSQL, pgbench and the console through it, check the compose file, clean
# up.  Needs root and network access to a Debian mirror; not part of make check.
DOCKER_DEB_PKGS := podman buildah debootstrap podman-compose python3-yaml

docker-deps:
	@missing=$$(for p in $(DOCKER_DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done; \
	for c in $(DEB_CMDS); do command -v $${c%%:*} >/dev/null 2>&1 || echo $${c#*:}; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y $$missing; \
	fi
	@# the Node.js drivers test/t/074_prep_drivers.pl runs, as pinned in test/node
	@[ test/node/node_modules/.package-lock.json -nt test/node/package-lock.json ] || \
		npm ci --prefix test/node --no-audit --no-fund

docker-test: deps docker-deps
	perl -I test/perl test/docker_test.pl

format:
	clang-format -i src/*.c include/*.h test/unit/*.c test/unit/*.h

cppcheck:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr -Iinclude src/

clean:
	rm -rf build pgslab pgslab-asan pgslab-malloc pgslab-synclog
