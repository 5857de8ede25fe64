# Starling developer entry points. Every target is a thin wrapper; the logic lives in scripts/
# (installing packages, tests) and in internal/run (make run).
#
#   make run     build and start everything locally (Redis, Prosody, NATS, gateway, API) — internal/run
#   make test    install missing servers, go vet, go test -race             — scripts/test.sh
#   make deps    install prosody and redis-server when missing               — scripts/deps.sh
#   make build   bin/starling-gateway and bin/starling-api
#   make lint    gofmt, go vet, staticcheck, and go.mod tidy (go mod tidy -diff)
#   make bench   the benchmark suite (bench/, real servers, the binaries as separate processes, then
#                the in-process view; < 15 min on an idle machine); writes docs/BENCHMARKS.md
#   make bench-quick   the same with small audiences (about a minute); writes no report
#   make bench-inprocess   only the in-process view (gateway and API inside the bench process)
#   make bench-go      Go micro-benchmarks only
#   make chaos   the fault-injection suite, long form: every fault in both stages, 20k followers,
#                Prosody and ejabberd (internal/chaos; its short form runs in make test)
#   make scale   the scale scenario, long form: 3-node NATS, Redis Cluster, ejabberd, 1-3 gateway
#                processes, 100k followers, kills mid-fanout (internal/chaos TestScaleOut)
#   make soak    30 minutes of mixed load, slopes of RSS, goroutines, fds and Redis memory
#                (internal/soak; SOAK_DURATION=3m for a short run)
#   make clean   remove bin/ and run/ (run/ holds the local secrets and data of `make run`)

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all run test deps build lint bench bench-quick bench-inprocess bench-go chaos scale soak clean

all: build

run:
	@bash scripts/deps.sh
	$(GO) run ./internal/run

test:
	@bash scripts/test.sh

deps:
	@bash scripts/deps.sh

build:
	$(GO) build -o bin/starling-gateway ./cmd/gateway
	$(GO) build -o bin/starling-api ./cmd/api
	$(GO) build -o bin/starlingctl ./cmd/starlingctl

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@if ! $(GO) mod tidy -diff >/dev/null; then \
		echo "go.mod/go.sum are not tidy (direct requirements must be marked direct): run go mod tidy"; \
		$(GO) mod tidy -diff; exit 1; \
	fi

bench:
	$(GO) run ./bench

bench-quick:
	$(GO) run ./bench -quick

bench-inprocess:
	$(GO) run ./bench -inprocess

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

SOAK_DURATION ?= 30m

chaos:
	@bash scripts/deps.sh --ejabberd
	STARLING_CHAOS=long $(GO) test -count=1 -timeout 60m -v -run 'TestChaos' ./internal/chaos

scale:
	@bash scripts/deps.sh --ejabberd
	STARLING_SCALE=long $(GO) test -count=1 -timeout 60m -v -run 'TestScaleOut' ./internal/chaos

soak:
	@bash scripts/deps.sh
	$(GO) run ./internal/soak -soak.duration $(SOAK_DURATION)

clean:
	@if [[ -e run/.lock ]] && command -v flock >/dev/null && ! flock -n run/.lock true; then \
		echo "make clean: 'make run' is still running from this folder; stop it first (Ctrl-C)"; exit 1; \
	fi
	rm -rf bin run
