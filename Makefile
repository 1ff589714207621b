# Tributary: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := .make
# pytest processes of `make test` (pytest-xdist, one test file per process at a time).
TEST_WORKERS ?= 2
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(HOME)/.cargo/bin:$(PATH)

# Development credentials for `make run` only (printed at start-up).
DEV_WRITE_KEY   ?= tributary-dev-write-key
DEV_ADMIN_TOKEN ?= tributary-dev-admin-token
# The debugger's static files are compiled in (include_str!): an edit to them is a rebuild, and so
# is one to the compiler flags (.cargo/config.toml).
RUST_SOURCES := $(shell find rust_core proto -name '*.rs' -o -name '*.proto' -o -name Cargo.toml) $(wildcard rust_core/http/static/*) Cargo.toml pyproject.toml .cargo/config.toml

.PHONY: help run test lint fmt proto proto-check bench fuzz fuzz-build wheel clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# lifetimes is installed without its dependencies (pandas, autograd, dill): the Predictions test
# only reads the CDNOW purchase history that ships inside it.
$(STAMP)/venv: requirements-dev.txt clients/python/pyproject.toml
	@mkdir -p $(STAMP)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	$(PIP) install -q -e clients/python
	$(PIP) install -q --no-deps lifetimes==0.11.3
	@touch $@

$(STAMP)/build: $(STAMP)/venv $(RUST_SOURCES)
	maturin develop --release -q
	@touch $@

run: $(STAMP)/build ## Build what is needed, then serve on ./data (gRPC :50051, HTTP :8088)
	@echo "development write key:   $(DEV_WRITE_KEY)"
	@echo "development admin token: $(DEV_ADMIN_TOKEN)"
	TRIBUTARY_DEV_WRITE_KEY=$(DEV_WRITE_KEY) TRIBUTARY_ADMIN_TOKEN=$(DEV_ADMIN_TOKEN) \
		$(VENV)/bin/cdp serve --data-dir ./data

# The debugger page's test (tests/test_debugger_browser.py) drives Debian's headless chromium;
# a clean CI machine (root) gets it here, once.
$(STAMP)/chromium:
	@mkdir -p $(STAMP)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; }
	@touch $@

test: $(STAMP)/build $(STAMP)/chromium $(STAMP)/wrk $(STAMP)/nats-server $(STAMP)/postgresql ## Build, then run every Rust and Python test, lint and proto-check
	cargo test -p tributary-engine -p tributary-http --release
	# The vendored roaring's own unit and property tests (they cover its patched AND/OR kernels),
	# with 64 cases a property instead of 256: about 25 s instead of 100 on two cores.
	PROPTEST_CASES=64 cargo test -p roaring --release --lib
	$(MAKE) --no-print-directory lint proto-check
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)/venv ## ruff, mypy --strict, cargo fmt --check, cargo clippy -D warnings
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict clients/python/tributary --exclude 'tributary/_proto/'
	$(PY) -m mypy.stubtest cdp_server._core
	cargo fmt --all --check
	cargo clippy --release --all-targets -q -- -D warnings

fmt: $(STAMP)/venv ## Format Python and Rust sources
	$(VENV)/bin/ruff check --fix -q .
	$(VENV)/bin/ruff format -q .
	cargo fmt --all

proto: $(STAMP)/venv ## Regenerate the committed Python stubs (clients/python/tributary/_proto) from proto/
	$(PY) proto/generate.py 2>/dev/null

proto-check: $(STAMP)/venv ## Fail when the committed stubs differ from proto/
	$(PY) proto/generate.py --check 2>/dev/null

# QUICK=1: small event counts and fewer rounds (a few minutes), into benchmarks/results/quick/.
BENCH_FLAGS := $(if $(filter 1 yes true,$(QUICK)),--quick)

bench: $(STAMP)/build $(STAMP)/wrk $(STAMP)/nats-server $(STAMP)/postgresql ## Run the benchmarks (QUICK=1: a few minutes); charts and README.md in benchmarks/results/
	@status=0; \
	$(PY) -m benchmarks.run $(BENCH_FLAGS) || status=1; \
	$(PY) -m benchmarks.unify $(BENCH_FLAGS) || status=1; \
	$(PY) -m benchmarks.http_api $(BENCH_FLAGS) || status=1; \
	$(PY) -m benchmarks.audiences $(BENCH_FLAGS) || status=1; \
	$(PY) -m benchmarks.predictions $(BENCH_FLAGS) || status=1; \
	$(PY) -m benchmarks.connections $(BENCH_FLAGS) || status=1; \
	$(PY) -m benchmarks.governance $(BENCH_FLAGS) || status=1; \
	$(PY) -m benchmarks.deletion $(BENCH_FLAGS) || status=1; \
	exit $$status

# Fuzzing (fuzz/, atheris): FUZZ_SECS seconds per target (FUZZ_TARGETS), with the engine built
# with coverage instrumentation (SanitizerCoverage, as cargo-fuzz builds on stable Rust; debug
# assertions and overflow checks on) into target/fuzz, apart from the ordinary build. What each
# run finds is kept in fuzz/work/<target>-corpus for the next run; crashing inputs go to
# fuzz/crashes/. `make test` runs each target briefly on the ordinary build (tests/test_fuzz.py).
FUZZ_SECS    ?= 600
FUZZ_TARGETS ?= http_json ingest_proto query
HOST_TRIPLE  := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
FUZZ_RUSTFLAGS := $(if $(filter x86_64-%,$(HOST_TRIPLE)),-C target-cpu=x86-64-v2) -C debug-assertions -C overflow-checks \
	-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=3 \
	-C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table \
	-C llvm-args=-sanitizer-coverage-trace-compares

# --target: RUSTFLAGS then reach only the library, not build scripts and proc macros (which would
# need libFuzzer's symbols to link). No LTO and more codegen units: a faster build.
fuzz-build: $(STAMP)/venv ## Build the coverage-instrumented engine the fuzzers load (target/fuzz)
	PYO3_PYTHON=$(abspath $(PY)) RUSTFLAGS="$(FUZZ_RUSTFLAGS)" CARGO_PROFILE_RELEASE_LTO=false \
		CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=false \
		cargo build --release -p tributary-python --target $(HOST_TRIPLE) --target-dir target/fuzz
	cp target/fuzz/$(HOST_TRIPLE)/release/lib_core.so target/fuzz/_core.so

fuzz: $(STAMP)/build fuzz-build ## Fuzz each target FUZZ_SECS s (default 600); crashing inputs in fuzz/crashes/
	@mkdir -p fuzz/crashes; status=0; \
	for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/$$target-corpus; \
		echo "fuzzing $$target for $(FUZZ_SECS) s"; \
		$(PY) -m fuzz.$$target --instrumented --work-dir fuzz/work/$$target-engine \
			-max_total_time=$(FUZZ_SECS) -print_final_stats=1 -artifact_prefix=fuzz/crashes/$$target- \
			fuzz/work/$$target-corpus fuzz/corpus/$$target || status=1; \
	done; \
	ls fuzz/crashes/* 2>/dev/null && echo "crashing inputs above: see fuzz/__init__.py" || true; \
	exit $$status

# wrk (Debian's package) drives the HTTP benchmark (benchmarks/http_api.py; its harness test
# runs in `make test`).
$(STAMP)/wrk:
	@mkdir -p $(STAMP)
	command -v wrk >/dev/null || { apt-get update && apt-get install -y wrk; }
	@touch $@

# nats-server (Debian's package): the nats destination's tests start their own, with JetStream, on
# loopback (tests/nats_server.py).
$(STAMP)/nats-server:
	@mkdir -p $(STAMP)
	command -v nats-server >/dev/null || { apt-get update && apt-get install -y nats-server; }
	@touch $@

# PostgreSQL (Debian's package) for the warehouse destination's tests and load benchmark: tests/postgres.py runs a
# private cluster with its initdb/pg_ctl (Debian keeps them in /usr/lib/postgresql/<major>/bin, off PATH).
$(STAMP)/postgresql:
	@mkdir -p $(STAMP)
	{ command -v pg_ctl && command -v initdb; } >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }
	@touch $@

# -i: the interpreter `maturin develop` builds for, so that cargo reuses that build.
wheel: $(STAMP)/venv ## Build the server's and the client's wheels into dist/ (install both)
	maturin build --release -i $(PY) -o dist
	$(PIP) wheel -q --no-deps --no-build-isolation clients/python -w dist

clean: ## Remove build outputs, the virtualenv and ./data
	rm -rf target $(VENV) $(STAMP) dist data cdp_server/_core*.so clients/python/build fuzz/work
