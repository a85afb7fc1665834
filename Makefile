# mlink — `make run` starts the demo, `make test` runs every test.
GO        ?= go
BIN       := bin/mlink
# go-nvml's headers use deprecated declarations; keep builds quiet.
export CGO_CFLAGS := -Wno-deprecated-declarations
export ONNXRUNTIME_LIB := $(CURDIR)/.deps/onnxruntime/libonnxruntime.so.1
# Pure-logic packages must build and test without cgo.
NOCGO_PKGS := ./pipeline/... ./links/... ./scheduler/...

.PHONY: deps build run demo-mlink demo-hybrid demo-skip test test-nocgo test-leaks fuzz validate-configs bench bench-trace drift drift-trace soak clean

deps:
	@./scripts/deps.sh

build: deps
	$(GO) build -o $(BIN) ./cmd/mlink

run: build
	$(BIN) run -c configs/demo.yaml

# The demo under a budget of about a quarter of the 13 models' time per frame (≈1.7–1.8 s: README, Benchmarks).
demo-mlink: build
	$(BIN) run -c configs/demo.yaml --policy mlink --budget 450ms

demo-hybrid: build
	$(BIN) run -c configs/demo.yaml --policy mlink-hybrid --budget 450ms

# What camera users run today: each model on its own interval.
demo-skip: build
	$(BIN) run -c configs/demo.yaml --policy skip-per-model --budget 450ms

# Every policy on every committed trace (the README's tables; a few minutes).
BENCH_ARGS := --budgets 1/4,1/3,1/2 --auto-budgets=false
bench-trace: build
	$(BIN) bench --trace links/testdata/vtest.trace.gz --out docs/bench
	$(BIN) bench --trace testdata/traces/vtest-left.trace.gz $(BENCH_ARGS) --sampling native --out docs/bench/vtest-left
	$(BIN) bench --trace testdata/traces/vtest-right.trace.gz $(BENCH_ARGS) --sampling native --out docs/bench/vtest-right
	$(BIN) bench --trace testdata/traces/vtest-zoo.trace.gz $(BENCH_ARGS) --sampling native --budget-mode mean --out docs/bench/vtest-zoo

# The adaptation (drift) experiment on the committed drift trace (seconds;
# testdata/drift/README.md). Not a bench trace: no budget table rests on it.
DRIFT_TRACE := testdata/drift/left-then-right.trace.gz
drift: build
	$(BIN) links drift --trace $(DRIFT_TRACE)

# Regenerate the drift trace from the committed vtest-left and vtest-right
# traces (deterministic: the same bytes each time).
drift-trace: build
	$(BIN) links drift --make --trace $(DRIFT_TRACE) --before testdata/traces/vtest-left.trace.gz --after testdata/traces/vtest-right.trace.gz

validate-configs: build
	@for f in configs/*.yaml; do $(BIN) validate -c $$f || exit 1; done

test-nocgo:
	CGO_ENABLED=0 $(GO) vet $(NOCGO_PKGS)
	CGO_ENABLED=0 $(GO) test -count=1 $(NOCGO_PKGS)

test: deps validate-configs test-nocgo
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) test-leaks
	rm -rf bin/fuzz/cache
	$(MAKE) fuzz FUZZTIME=$(TEST_FUZZTIME) FUZZ_CACHE=$(CURDIR)/bin/fuzz/cache

# Every decoder of bytes from the bus or from disk has a fuzz target
# (package/FuzzName); `go test` replays their seeds and testdata/fuzz/
# crashers, `make fuzz` fuzzes each for FUZZTIME (make test: TEST_FUZZTIME).
# Go fuzzes one target per run: each package's instrumented test binary is
# built once, then run per target from the package's directory. New inputs
# are minimised by count, not for a minute each, so short runs fuzz. The
# corpus found accumulates in go test's own fuzz cache (make test starts
# from the seeds each time: replaying a grown corpus would eat its time).
# The cgo packages count gocv Mats (-tags matprofile): an input leaking one
# fails. A bare "context deadline exceeded" with no input written is Go
# 1.26's coordinator race at the end of -fuzztime, not a finding.
FUZZTIME ?= 5s
TEST_FUZZTIME ?= 3s
FUZZMINIMIZE ?= 100x
FUZZ_NOCGO := pipeline/FuzzDecodeFrame pipeline/FuzzJPEGSize pipeline/FuzzUnmarshalOutput pipeline/FuzzUnmarshalPlan \
	pipeline/FuzzUnmarshalResult pipeline/FuzzUnmarshalPredictRequest pipeline/FuzzUnmarshalHeartbeat pipeline/FuzzUnmarshalEscalation \
	pipeline/FuzzParseConfig pipeline/FuzzParseByteSize \
	links/FuzzTraceReader links/FuzzLoadLinks links/FuzzUnmarshalSet \
	cmd/tfjs2onnx/FuzzConvert
FUZZ_CGO := stages/FuzzDecodeFrame ingest/FuzzMJPEG
# A longer run of a few: make fuzz FUZZ_TARGETS=links/FuzzLoadLinks FUZZTIME=10m
FUZZ_TARGETS ?= $(FUZZ_NOCGO) $(FUZZ_CGO)
FUZZ_CACHE ?= $(shell $(GO) env GOCACHE)/fuzz/$(shell $(GO) list -m)

fuzz:
	@mkdir -p bin/fuzz
	@set -e; for pkg in $(sort $(foreach t,$(FUZZ_NOCGO),$(dir $(t)))); do \
		CGO_ENABLED=0 $(GO) test -c -fuzz . -o bin/fuzz/$$(echo $${pkg%/} | tr / -).test ./$$pkg; done
	@set -e; for pkg in $(sort $(foreach t,$(FUZZ_CGO),$(dir $(t)))); do \
		$(GO) test -c -fuzz . -tags matprofile -o bin/fuzz/$$(echo $${pkg%/} | tr / -).test ./$$pkg; done
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%/*}; name=$${t##*/}; bin=$(CURDIR)/bin/fuzz/$$(echo $$pkg | tr / -); log=$$bin-$$name.log; \
		if (cd $$pkg && $$bin.test -test.run '^$$' -test.fuzz "^$$name\$$" -test.fuzztime $(FUZZTIME) \
			-test.fuzzminimizetime $(FUZZMINIMIZE) -test.fuzzcachedir $(FUZZ_CACHE)/$$pkg) >$$log 2>&1; then \
			echo "$$pkg $$name: $$(grep '^fuzz: elapsed' $$log | tail -n 1 | cut -d' ' -f3-)"; \
		elif grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
			echo "$$pkg $$name: no input found; the failure is Go's fuzztime deadline race (go.dev/issue/75804, fixed in Go 1.27), ignored"; \
		else cat $$log; echo "$$pkg $$name failed: the input is in $$pkg/testdata/fuzz/$$name/"; exit 1; fi; \
	done

# gocv counts live Mats with -tags matprofile: these tests fail on a Mat
# that is never closed (the whole ingest suite, the leak tests elsewhere).
test-leaks:
	$(GO) test -count=1 -tags matprofile ./ingest/
	$(GO) test -count=1 -tags matprofile -run 'NoMatLeak' ./stages/...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 20x ./stages/... ./links/... ./pipeline/...
	$(BIN) bench pipeline -c configs/demo.yaml --frames 100

# 8 cameras for 30 minutes (not in CI): frames/s held, p99 latency, drops,
# memory flat. SOAK_DURATION=5m for a shorter one.
SOAK_DURATION ?= 30m
soak: build
	$(BIN) bench soak -c configs/soak.yaml --policy mlink-hybrid --budget 40ms --duration $(SOAK_DURATION) --every 1m --json .mlink/soak.json

clean:
	rm -rf bin .mlink
