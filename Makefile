# Starling developer entry points. Every target is a thin wrapper; the logic lives in scripts/.
#
#   make run     build and start everything locally (Redis, Prosody, gateway, API) — scripts/run.sh
#   make test    install missing servers, go vet, go test -race             — scripts/test.sh
#   make deps    install prosody and redis-server when missing               — scripts/deps.sh
#   make build   bin/starling-gateway and bin/starling-api
#   make lint    gofmt, go vet, staticcheck
#   make bench   Go benchmarks only
#   make clean   remove bin/ and run/ (run/ holds the local secrets and data of `make run`)

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all run test deps build lint bench clean

all: build

run:
	@bash scripts/run.sh

test:
	@bash scripts/test.sh

deps:
	@bash scripts/deps.sh

build:
	$(GO) build -o bin/starling-gateway ./cmd/gateway
	$(GO) build -o bin/starling-api ./cmd/api

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	@if [[ -e run/.lock ]] && command -v flock >/dev/null && ! flock -n run/.lock true; then \
		echo "make clean: 'make run' is still running from this folder; stop it first (Ctrl-C)"; exit 1; \
	fi
	rm -rf bin run
