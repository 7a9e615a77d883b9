#!/usr/bin/env bash
# The test suite CI runs (via `make test`): unit, component (embedded Kafka in
# process) and integration tests (real livekit-server, phone simulator), then a
# short run of every fuzz target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export TESTCONTAINERS_RYUK_DISABLED=true
export LIVEKIT_SERVER_BIN="${LIVEKIT_SERVER_BIN:-$PWD/.cache/bin/livekit-server}"

# Prometheus and promtool (Debian's package) for the alert-rule checks and the
# test that runs a real Prometheus against the pipeline.
./scripts/install-prometheus.sh
promtool check rules deploy/prometheus/rules/*.yaml
promtool test rules deploy/prometheus/tests/*.yaml

# PostgreSQL (Debian's package) for the call records tests, which run on
# SQLite and on a real PostgreSQL: one throwaway server on 127.0.0.1 for the
# whole run; each test creates a database of its own on it.
./scripts/install-postgres.sh
pgdir="$(mktemp -d -t dialstream-pg.XXXXXX)"
trap './scripts/install-postgres.sh --stop "$pgdir"' EXIT
eval "$(./scripts/install-postgres.sh --start "$pgdir")"

# Everything but the container suite...
go test -count=1 -timeout 25m $(go list ./... | grep -v '/tests/containers$')

# ...which runs on its own: it starts ~10 containers per test and injects
# faults on a timetable, so it should not share the CPU with other packages.
# About 19 minutes here (13 tests of ~1.5 min at 528 calls each, plus
# 10-70 s of image builds); it prints one SKIP line without Docker, and fails
# instead under CI=true.
go test -count=1 -timeout 35m -v ./tests/containers

# Every fuzz target briefly (about a minute for all): every decoder of
# outside input must never panic, answer 5xx, or accept what its schema
# refuses. `make fuzz` runs them longer.
FUZZTIME="${FUZZTIME:-3s}" ./scripts/fuzz.sh
