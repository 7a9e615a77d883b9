#!/usr/bin/env bash
# The test suite CI runs (via `make test`): unit, component (embedded Kafka in
# process) and integration tests (real livekit-server, phone simulator), then a
# short fuzz run of the request decoder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export TESTCONTAINERS_RYUK_DISABLED=true
export LIVEKIT_SERVER_BIN="${LIVEKIT_SERVER_BIN:-$PWD/.cache/bin/livekit-server}"

# Prometheus and promtool (Debian's package) for the alert-rule checks and the
# test that runs a real Prometheus against the pipeline.
./scripts/install-prometheus.sh
promtool check rules deploy/prometheus/rules/*.yaml
promtool test rules deploy/prometheus/tests/*.yaml

go test -count=1 -timeout 25m ./...

# Fuzz the HTTP request decoder briefly: it must never answer 5xx or panic.
go test -count=1 -run='^$' -fuzz='^FuzzCreateCall$' -fuzztime="${FUZZTIME:-20s}" ./ingest
