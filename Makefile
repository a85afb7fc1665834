# mlink — `make run` starts the demo, `make test` runs every test.
GO        ?= go
BIN       := bin/mlink
# go-nvml's headers use deprecated declarations; keep builds quiet.
export CGO_CFLAGS := -Wno-deprecated-declarations
export ONNXRUNTIME_LIB := $(CURDIR)/.deps/onnxruntime/libonnxruntime.so.1
# Pure-logic packages must build and test without cgo.
NOCGO_PKGS := ./pipeline/... ./links/... ./scheduler/...

.PHONY: deps build run demo-mlink demo-hybrid demo-skip test test-nocgo validate-configs bench bench-trace clean

deps:
	@./scripts/deps.sh

build: deps
	$(GO) build -o $(BIN) ./cmd/mlink

run: build
	$(BIN) run -c configs/demo.yaml

# The demo under a budget of about a third of the models' time per frame.
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

validate-configs: build
	@for f in configs/*.yaml; do $(BIN) validate -c $$f || exit 1; done

test-nocgo:
	CGO_ENABLED=0 $(GO) vet $(NOCGO_PKGS)
	CGO_ENABLED=0 $(GO) test -count=1 $(NOCGO_PKGS)

test: deps validate-configs test-nocgo
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) test-leaks

# gocv counts live Mats with -tags matprofile: these tests fail on a Mat
# that is never closed (the whole ingest suite, the leak tests elsewhere).
test-leaks:
	$(GO) test -count=1 -tags matprofile ./ingest/
	$(GO) test -count=1 -tags matprofile -run 'NoMatLeak' ./stages/...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 20x ./stages/... ./links/... ./pipeline/...
	$(BIN) bench pipeline -c configs/demo.yaml --frames 100

clean:
	rm -rf bin .mlink
