#!/usr/bin/env bash
# `make soak`: the whole dev pipeline (livekit-server, phone simulator,
# reference agent, ingest, dialer, notifier, recorder, scheduler in one
# `dialstream dev` process; the embedded Kafka broker as a process of its
# own, `dialstream broker`, so that what a broker keeps by design is told
# apart from the services) under a steady call rate for a bounded time,
# sampling the memory and goroutines of both Dialstream processes and
# livekit-server's memory. Flat columns are the point: a leak shows as a line
# that keeps climbing. Not run in CI.
#
#   make soak                                   one hour at 5 calls/s
#   SOAK_DURATION=10m SOAK_RATE=10 make soak    shorter, faster
#   SOAK_SAMPLE=30s                             sampling interval (default 60s)
#
#   SOAK_REDIS=miniredis                        livekit-server on dev mode's
#                                               in-process miniredis, as `make run`
#
# livekit-server's Redis is a real redis-server by default (Debian's package,
# installed by scripts/install-redis.sh, started on loopback without
# persistence): dev mode's in-process miniredis keeps the name of every key
# ever written (its WATCH versions), which would grow the dev process by a few
# hundred bytes a call that are no Dialstream service's. The table shows the
# Redis server's own memory in a column of its own.
#
# Calls go to the simulator's numbers in turn (answered, busy, no answer,
# declined, a person, a voicemail), all to loopback. The table is printed as
# it grows and written to .data/soak/<date>.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

duration="${SOAK_DURATION:-1h}"
rate="${SOAK_RATE:-5}"
sample="${SOAK_SAMPLE:-60s}"
redis="${SOAK_REDIS:-real}"
[[ "$redis" == real || "$redis" == miniredis ]] || { echo "soak: SOAK_REDIS must be real or miniredis" >&2; exit 2; }
secs() { # 1h, 10m, 30s, 90 -> seconds
	case "$1" in
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}
total="$(secs "$duration")"
every="$(secs "$sample")"
[[ "$rate" =~ ^[0-9]+$ && "$rate" -ge 1 && "$rate" -le 100 ]] || { echo "soak: SOAK_RATE must be 1-100 calls/s" >&2; exit 2; }
[[ "$total" -ge 1 && "$total" -le 86400 ]] || { echo "soak: SOAK_DURATION must be between 1s and 24h" >&2; exit 2; }

# The state that is kept for a while by design is kept for less here, so its
# plateau shows within the hour: the dialer keeps each ended call for
# DIALER_ENDED_RETENTION (24h by default: a late duplicate of a request must
# find it and not dial again), the phone simulator the last PHONESIM_DIAL_LOG
# dials (100,000). A line still climbing after those are reached is a leak;
# the README turns the per-call cost into the plateau of the defaults.
export DIALER_ENDED_RETENTION="${DIALER_ENDED_RETENTION:-10m}"
export PHONESIM_DIAL_LOG="${PHONESIM_DIAL_LOG:-2000}"
# Both processes' runtime profiles, on loopback: a heap profile of each is
# taken at every sample, and the growth between the first sample after the
# warm-up and the last is printed by allocation site at the end.
devprof=127.0.0.1:6061
brokerprof=127.0.0.1:6062
brokeraddr=127.0.0.1:19092

export LIVEKIT_SERVER_BIN="${LIVEKIT_SERVER_BIN:-$PWD/.cache/bin/livekit-server}"
[[ -x "$LIVEKIT_SERVER_BIN" ]] || ./scripts/install-livekit.sh
mkdir -p bin .data/soak
CGO_ENABLED=0 go build -trimpath -o bin/dialstream ./cmd/dialstream

stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
table=".data/soak/$stamp.md"
profiles=".data/soak/$stamp-heap"
mkdir -p "$profiles"
work="$(mktemp -d -t dialstream-soak.XXXXXX)"
mkdir -p "$work/deploy/dev"
# The demo workspace's limits raised above the soak's rate (the dev registry
# admits 5 calls at once, 2 a second): under them the calls would wait in
# the dialer's admission queue, which grows by design until
# DIALER_MAX_QUEUE_WAIT (1h) expires them, and the soak would measure that
# queue instead of the pipeline.
sed "s/limits: {max_concurrent_calls: 5, calls_per_second: 2, burst: 5,/limits: {max_concurrent_calls: $((rate * 40)), calls_per_second: $((rate * 2)), burst: $((rate * 2)),/" \
	deploy/dev/registry.yaml >"$work/deploy/dev/registry.yaml"
grep -q "max_concurrent_calls: $((rate * 40))," "$work/deploy/dev/registry.yaml" || { echo "soak: could not raise ws_demo's limits in the registry" >&2; exit 1; }
# listening HOST:PORT: polls until something accepts TCP there (10 s at most).
listening() {
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/${1%%:*}/${1##*:}") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
redisaddr=127.0.0.1:16379
redispid=
if [[ "$redis" == real ]]; then
	./scripts/install-redis.sh
	redis-server --bind 127.0.0.1 --port "${redisaddr##*:}" --save '' --appendonly no \
		--dir "$work" --logfile "$work/redis.log" &
	redispid=$!
	listening "$redisaddr" || { echo "soak: redis-server not listening on $redisaddr after 10 s; see $work/redis.log" >&2; kill "$redispid"; exit 1; }
	export DEV_REDIS_ADDR="$redisaddr"
fi
BROKER_LISTEN="$brokeraddr" BROKER_DATA_DIR="$work/kafka" DIALSTREAM_PPROF_ADDR="$brokerprof" \
	bin/dialstream broker >"$work/broker.log" 2>&1 &
broker=$!
listening "$brokeraddr" || { echo "soak: the broker is not listening on $brokeraddr after 10 s; see $work/broker.log" >&2; kill "$broker" ${redispid:+"$redispid"}; exit 1; }
(cd "$work" && KAFKA_BROKERS="$brokeraddr" DIALSTREAM_PPROF_ADDR="$devprof" exec "$OLDPWD/bin/dialstream" dev >"$work/dev.log" 2>&1) &
dev=$!
cleanup() {
	kill -TERM "$dev" 2>/dev/null || true
	wait "$dev" 2>/dev/null || true
	kill -TERM "$broker" 2>/dev/null || true
	wait "$broker" 2>/dev/null || true
	if [[ -n "$redispid" ]]; then
		kill -TERM "$redispid" 2>/dev/null || true
		wait "$redispid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap "exit 143" INT TERM

ingest=127.0.0.1:8080
for i in $(seq 1 120); do
	curl -fsS "http://$ingest/readyz" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:8085/readyz" >/dev/null 2>&1 && break
	[[ "$i" == 120 ]] && { echo "soak: dev mode not ready after 120 s; see $work/dev.log" >&2; tail -20 "$work/dev.log" >&2; exit 1; }
	sleep 1
done

metric() { # metric NAME from the process's /metrics
	curl -fsS "http://$ingest/metrics" | awk -v m="$1" '$1 == m {v = $2} END {printf "%.0f", v}'
}
metric_sum() { # metric_sum NAME: the sum over its labels
	curl -fsS "http://$ingest/metrics" | awk -v m="$1" 'index($1, m "{") == 1 {v += $2} END {printf "%.0f", v}'
}
rss() { # rss PID: resident MiB
	[[ -n "$1" && -r "/proc/$1/status" ]] && awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" || echo "-"
}
redismem() { # the Redis server's used_memory, MiB ("-" on miniredis)
	if [[ -n "$redispid" ]]; then
		redis-cli -h "${redisaddr%%:*}" -p "${redisaddr##*:}" info memory | awk -F: '$1 == "used_memory" {printf "%.1f", $2 / 1048576}'
	else
		echo "-"
	fi
}
heapinuse() { # heapinuse PPROF_ADDR: the Go heap in use, MiB
	curl -fsS "http://$1/debug/pprof/heap?debug=1" | awk '$2 == "HeapInuse" {printf "%.0f", $4 / 1048576}'
}

numbers=(+15550100001 +15550100486 +15550100480 +15550100603 +15550100200 +15550100300)
echo "| elapsed | calls sent | 202s | dialed | ended | dev RSS MiB | dev Go heap in use MiB | dev goroutines | broker RSS MiB | broker Go heap in use MiB | livekit-server RSS MiB | Redis used MiB |" | tee "$table"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|" | tee -a "$table"
row() {
	local gor
	gor="$(metric go_goroutines)"
	echo "| $1 s | $sent | $ok | $(metric dialstream_dialer_calls_admitted_total) | $(metric_sum dialstream_dialer_calls_ended_total) | $(rss "$dev") | $(heapinuse "$devprof") | $gor | $(rss "$broker") | $(heapinuse "$brokerprof") | $(rss "$(pgrep -f "$LIVEKIT_SERVER_BIN" | head -1 || true)") | $(redismem) |" | tee -a "$table"
	curl -fsS -o "$profiles/dev-$(printf '%06d' "$1").pb.gz" "http://$devprof/debug/pprof/heap" || true
	curl -fsS -o "$profiles/broker-$(printf '%06d' "$1").pb.gz" "http://$brokerprof/debug/pprof/heap" || true
}

# Calls are sent on a schedule (call n at n/rate seconds), one at a time:
# a slow answer delays the next calls, which then go out back to back.
sent=0
ok=0
start="$(date +%s)"
start_ms="$(date +%s%3N)"
next_sample=0
while :; do
	now=$(($(date +%s) - start))
	((now >= total)) && break
	if ((now >= next_sample)); then
		row "$now"
		next_sample=$((next_sample + every))
	fi
	due=$((($(date +%s%3N) - start_ms) * rate / 1000))
	while ((sent < due)); do
		to="${numbers[$((sent % ${#numbers[@]}))]}"
		code="$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST "http://$ingest/v1/api/call" \
			-H 'Content-Type: application/json' -H 'x-workspace-id: ws_demo' -H 'Authorization: Bearer dsk_demo_local' \
			-d "{\"to\":\"$to\",\"call_agent_id\":\"a1b2c3d4e5f6a7b8c9d0e1f2\",\"callback_url\":\"http://127.0.0.1:8090/hooks/ws_demo\",\"dynamic_variables\":{\"firstName\":\"Ada\"}}")"
		sent=$((sent + 1))
		[[ "$code" == 202 ]] && ok=$((ok + 1))
	done
	sleep 0.1
done
row "$total"
echo "soak: table in $table"
# What grew: each process's in-use heap in the last profile less the one a
# tenth of the way in (past the warm-up), by function.
for proc in dev broker; do
	heaps=("$profiles"/$proc-*.pb.gz)
	if ((${#heaps[@]} >= 3)); then
		base="${heaps[$((${#heaps[@]} / 10 > 0 ? ${#heaps[@]} / 10 : 1))]}"
		echo "soak: $proc heap growth from $(basename "$base") to $(basename "${heaps[-1]}"), in use, by function:" | tee -a "$table"
		go tool pprof -top -nodecount=25 -sample_index=inuse_space -base "$base" bin/dialstream "${heaps[-1]}" 2>/dev/null | tee -a "$table" || true
	fi
done
