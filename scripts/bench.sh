#!/usr/bin/env bash
# `make bench`: every performance figure of the README in one run, each beside
# its floor where it has one, then one summary table. Everything runs on this
# machine over loopback (embedded broker, livekit-server, phone simulator), in
# turn, so no two measurements share the CPU.
#
#   make bench                 the full run (about 10 minutes on 2 cores)
#   BENCH_QUICK=1 make bench   smaller sizes, for checking the script itself
#
# The full log of every step goes to .data/bench/<date>.log; the summary table
# is printed at the end and written beside it (.md), ready for the README.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export LIVEKIT_SERVER_BIN="${LIVEKIT_SERVER_BIN:-$PWD/.cache/bin/livekit-server}"
if [[ ! -x "$LIVEKIT_SERVER_BIN" ]]; then
	./scripts/install-livekit.sh
fi

quick="${BENCH_QUICK:-}"
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
dir=".data/bench"
mkdir -p "$dir"
log="$dir/$stamp.log"
table="$dir/$stamp.md"
: >"$log"

# step NAME CMD...: runs CMD, appends its output to the log, keeps it for
# the summary in $out.
out=""
step() {
	local name="$1"
	shift
	echo "== $name" | tee -a "$log"
	if ! out="$("$@" 2>&1)"; then
		echo "$out" >>"$log"
		echo "bench: step '$name' failed; its output is in $log" >&2
		exit 1
	fi
	echo "$out" >>"$log"
}

rows=()
row() { rows+=("| $1 | $2 | $3 |"); }
# pick REGEX: the first line of the last step's output matching REGEX.
pick() { grep -m1 -E "$1" <<<"$out" | sed -E 's/^[[:space:]]*([a-z_]+\.go:[0-9]+: )?//' || true; }

# 1. Ingest against a bare Gin handler doing the same acks=all produce.
n=20000
rounds=2
[[ -n "$quick" ]] && n=2000 && rounds=1
step "ingest vs bare Gin+produce (loopback HTTP, 64 connections)" \
	go run ./ingest/loadgen -n "$n" -c 64 -rounds "$rounds"
# A result line ends "req/s p50 p99 max errors cpu/req"; the scenario name
# has spaces.
fig() { awk '{print $(NF-5)" req/s, p50 "$(NF-4)", p99 "$(NF-3)", CPU "$NF"/req"}' <<<"$1"; }
ing="$(grep -E '^ingest POST' <<<"$out" | tail -1 || true)"
bare="$(grep -E '^bare gin' <<<"$out" | tail -1 || true)"
row "ingest POST /v1/api/call, 64 connections (the recorder in a process of its own)" "$(fig "$ing")" "bare Gin+produce: $(fig "$bare")"

# 2. Notifier against a bare http.Client with the same concurrency.
step "notifier vs bare HTTP client" \
	go test -count=1 -run '^$' -bench '^BenchmarkThroughput$' -benchtime 1x ./notifier
# metric UNIT: the value the benchmark reported in UNIT.
metric() { grep -oE "[0-9.]+ $1" <<<"$out" | head -1 | awk '{print $1}' || true; }
row "notifier webhooks/s, loopback receiver (signing, delivery log acked before commit)" \
	"$(metric 'notifier_webhooks/s') ($(metric 'notifier/bare')x; $(metric 'notifier_cpu_us/webhook') us CPU per webhook)" \
	"bare client: $(metric 'bare_client_webhooks/s') ($(metric 'bare_cpu_us/webhook') us CPU per webhook)"
row "notifier webhooks/s, receiver answering in 10 ms" "$(metric 'notifier_10ms_receiver_webhooks/s')" \
	"bare client: $(metric 'bare_10ms_receiver_webhooks/s')"

# 3. The dialer through livekit-server and the phone simulator.
dcalls=300 dlive=200 drate=100
[[ -n "$quick" ]] && dcalls=40 dlive=20 drate=20
step "dialer through livekit-server + phonesim" \
	env DIALER_FIGURES=1 DIALER_FIGURES_CALLS="$dcalls" DIALER_FIGURES_LIVE="$dlive" DIALER_FIGURES_RATE="$drate" go test -count=1 -run '^TestFigures$' -v -timeout 20m ./dialer
row "request -> dialing at $drate calls/s (p50, p99)" "$(pick 'steady [0-9]+ calls/s' | sed -E 's/.*calls\/s: //')" "-"
row "calls admitted / placed per second (burst)" "$(pick 'burst of' | sed -E 's/.*\): //')" "-"
row "dialer RSS with calls live" "$(pick 'RSS with' | sed -E 's/, livekit-server.*//')" "$(pick 'RSS idle')"

# 4. The reference agent: time to first audio, memory per call.
acalls=50
[[ -n "$quick" ]] && acalls=10
step "reference agent: answer -> first audio, memory per call" \
	env AGENT_TEST_CALLS="$acalls" go test -count=1 -run '^(TestAnswerToFirstAudio|TestAgentMemoryPerCall)$' -v -timeout 15m ./agent
row "answer -> first agent audio at the callee" "$(pick 'first agent audio at the callee' | sed -E 's/.*: p50/p50/')" "-"
row "agent memory per call" "$(pick 'agent process with' | sed -E 's/;.*//')" "-"

# 5. Compliance: the dial-time check with a million suppressed numbers.
# The check runs 2000 times; the table is built once (-benchtime is per
# benchmark: 2000x would build a million-number table 2000 times).
step "compliance check with 1,000,000 suppressed numbers" \
	go test -count=1 -run '^$' -bench 'CheckMillionSuppressed' -benchtime 2000x ./internal/compliance
row "dial-time compliance check, 1M suppressed" "$(grep -m1 -E '^BenchmarkCheckMillionSuppressed' <<<"$out" | awk '{print $3" "$4}')" "-"
step "suppression table of 1,000,000 numbers" \
	go test -count=1 -run '^$' -bench 'TableMemoryMillion' -benchtime 1x ./internal/compliance
row "suppression table memory, 1M numbers" "$(grep -oE '[0-9.]+ bytes/number' <<<"$out" | head -1 || true)" "-"

# 6. Call records: recorder throughput and reads on SQLite (the PostgreSQL
#    figures need a server: RECORDER_FIGURES_ENGINES=postgres, see recorder/).
#    Half the calls go through Kafka, the other half through the batch code
#    alone, so both figures are there (the test's default sends the first
#    50,000 through Kafka, which is all of them in a quick run).
calls=100000
[[ -n "$quick" ]] && calls=5000
step "call records (recorder, GET, list, export, size)" \
	env RECORDER_FIGURES=1 RECORDER_FIGURES_CALLS="$calls" RECORDER_FIGURES_E2E="$((calls / 2))" RECORDER_FIGURES_ENGINES=sqlite go test -count=1 -run '^TestFigures$' -v -timeout 30m ./recorder
row "recorder end to end, Kafka -> SQLite ($((calls / 2)) calls)" "$(pick 'sqlite recorder end to end' | sed -E 's/.*: ([0-9]+ events\/s).*/\1/')" "-"
row "recorder batch writes, SQLite" "$(pick 'sqlite batch writes' | sed -E 's/.*: ([0-9]+ events\/s).*/\1/')" "-"
row "GET /v1/api/call/:id from the store (sqlite)" "$(pick 'sqlite GET by id' | sed -E 's/.*\): //')" "-"

{
	echo "Dialstream \`make bench\`, $stamp, $(nproc) cores, $(go env GOOS)/$(go env GOARCH), $(go version | awk '{print $3}')"
	echo
	echo "| figure | measured | floor |"
	echo "|---|---|---|"
	printf '%s\n' "${rows[@]}"
} | tee "$table"
echo "full log: $log"
