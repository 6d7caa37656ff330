# steerdns: `make run` starts the server on its embedded example, `make test` runs every test.
# Targets: build run test fuzz bench-go bench deps clean. Go >= 1.26 is needed.

GO       ?= go
FUZZTIME ?= 30s
BIN      := bin

.PHONY: all build run test fuzz bench-go bench deps clean

all: build

# bin/steerdns, and bin/steerctl once cmd/steerctl exists.
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/steerdns ./cmd/steerdns
	@if [ -d cmd/steerctl ]; then \
		echo "$(GO) build -o $(BIN)/steerctl ./cmd/steerctl"; \
		$(GO) build -o $(BIN)/steerctl ./cmd/steerctl; \
	fi

# Serves the embedded example (zone example.test. on 127.0.0.1:1053): steerdns runs without
# -conf from an empty temporary folder, so that no ./Corefile is found. Ctrl-C stops it.
run: deps build
	cd $$(mktemp -d) && exec $(CURDIR)/$(BIN)/steerdns

# go vet, then every test with the race detector, then the allocation counts, which need it off.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m ./...
	$(GO) test -count=1 -run 'Allocations' ./...

# Each fuzz target for FUZZTIME (default 30s); a target not written yet is skipped with a note.
fuzz:
	@set -e; for t in zones:FuzzDecode plugin/steer:FuzzServeDNS cluster:FuzzDecode; do \
		pkg=./$${t%%:*}; fn=$${t##*:}; \
		if $(GO) test -list "^$$fn$$" $$pkg 2>/dev/null | grep -qx "$$fn"; then \
			echo "$(GO) test -run '^$$' -fuzz '^$$fn$$' -fuzztime $(FUZZTIME) $$pkg"; \
			$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
		else \
			echo "fuzz: $$fn is not in $$pkg yet: skipped"; \
		fi; \
	done

# Go benchmarks of the query path, the policy compile step and the health engine. With
# STEER_BIG=1, also the 100,000-service load (TestHugeZone) and compile (BenchmarkCompileHuge,
# slow: three iterations) of test/bench.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./plugin/steer ./zones ./healthcheck
	@if [ "$(STEER_BIG)" = 1 ]; then \
		echo "STEER_BIG=1 $(GO) test -run TestHugeZone -bench CompileHuge -benchtime 3x -benchmem -v ./test/bench"; \
		STEER_BIG=1 $(GO) test -run TestHugeZone -bench CompileHuge -benchtime 3x -benchmem -v ./test/bench; \
	fi

# dnsperf against steer and file in one binary (test/bench/run.sh, just under 10 minutes; needs
# dnsperf, 2 CPUs, and 127.0.0.1-127.0.0.10). Knobs, from the environment: ROUNDS (5),
# DURATION (8 s), SCENARIOS ("a b c c0"), SWEEP ("a b c"), SCALING (1), COMPILE (1),
# PORT_BASE (15300) and more, listed at the top of run.sh; e.g. make bench ROUNDS=3 DURATION=5.
# The table goes to stdout and to test/bench/out/summary.txt.
bench: build
	@if [ -f test/bench/run.sh ]; then \
		ROUNDS="$(ROUNDS)" DURATION="$(DURATION)" bash test/bench/run.sh; \
	else \
		echo "bench: test/bench/run.sh is not written yet; try make bench-go"; \
	fi

# What the tests and the tour need from Debian: dig (dnsutils) and, for -race, a C compiler.
# Installed only when missing and when running as root; otherwise a note says what to install.
deps:
	@missing=""; \
	command -v dig >/dev/null 2>&1 || missing="$$missing dnsutils"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "deps: installing$$missing"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
		else \
			echo "deps: missing$$missing; install them (sudo apt-get install$$missing)" >&2; \
		fi; \
	fi

clean:
	rm -rf $(BIN)
	$(GO) clean -testcache
