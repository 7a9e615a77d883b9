#!/usr/bin/env bash
# The test suite CI runs (via `make test`): unit, component (embedded Kafka in
# process) and integration tests (real livekit-server, phone simulator), then a
# short fuzz run of the request decoder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export TESTCONTAINERS_RYUK_DISABLED=true
export LIVEKIT_SERVER_BIN="${LIVEKIT_SERVER_BIN:-$PWD/.cache/bin/livekit-server}"

go test -count=1 -timeout 25m ./...

# Fuzz the HTTP request decoder briefly: it must never answer 5xx or panic.
go test -count=1 -run='^$' -fuzz='^FuzzCreateCall$' -fuzztime="${FUZZTIME:-20s}" ./ingest
