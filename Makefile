# Dialstream. The two commands a newcomer needs:
#   make run    the whole pipeline on embedded defaults (Kafka broker, LiveKit, phone simulator)
#   make test   every test CI runs
SHELL := /bin/bash
GO ?= go
BIN := bin/dialstream
PKGS := ./...

.PHONY: run test test-unit test-fuzz build lint livekit clean bench soak fuzz

run: livekit
	$(GO) run ./cmd/dialstream dev

# CI runs exactly this (see .ci/run).
test: livekit lint
	./scripts/test.sh

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/dialstream

lint:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# livekit-server v1.13.5, built from source once into .cache/bin (about 3 minutes cold).
livekit:
	./scripts/install-livekit.sh

bench:
	./scripts/bench.sh

# The whole dev pipeline under a steady call rate for SOAK_DURATION (1h):
# memory and goroutines sampled every SOAK_SAMPLE. Not part of CI.
soak: livekit
	./scripts/soak.sh

# Every fuzz target for FUZZTIME each (default 60s), one at a time, one worker.
fuzz:
	./scripts/fuzz.sh

clean:
	rm -rf bin .data
