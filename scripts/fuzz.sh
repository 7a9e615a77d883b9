#!/usr/bin/env bash
# Runs every fuzz target of the repository (every Fuzz* function in a
# *_fuzz_test.go file, found afresh each run, so a new target is included
# without editing this file) for FUZZTIME each (default 60s), one target at a
# time with one worker: the machine's cores are shared. Each package's test
# binary is built once with fuzzing instrumentation and run once per target,
# which is `go test -run='^$' -fuzz='^Name$' -fuzztime=$FUZZTIME -parallel=1
# ./pkg` without relinking per target.
#
#   make fuzz                       # 60s per target
#   FUZZTIME=10m make fuzz          # a long run
#   FUZZTIME=3s ./scripts/fuzz.sh   # what scripts/test.sh (CI) runs
#   FUZZ_TARGETS='FuzzWebhook FuzzParseJob' ./scripts/fuzz.sh   # only these
#   FUZZMINIMIZETIME=1s make fuzz   # spend less on shrinking new inputs
#
# The instrumented binaries are large (Gin, franz-go, OpenTelemetry), so a
# target runs a few hundred to a few thousand inputs a second, and much of a
# run goes to minimizing each input that finds new coverage (up to 60s each
# by default): FUZZMINIMIZETIME trades smaller corpus entries for more inputs.
#
# A failing input is written to the package's testdata/fuzz/<Name>/ (keep it:
# it is the regression test of the bug it found). At the end it prints each
# target's executions and fails if any target failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime="${FUZZTIME:-60s}"
only=" ${FUZZ_TARGETS:-} "
cache="$(go env GOCACHE)/fuzz"
module="$(go list -m)"
tmp="$(mktemp -d -t dialstream-fuzz.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

summary=()
failed=()
for dir in $(find . -name '*_fuzz_test.go' -not -path './.cache/*' -exec dirname {} \; | sort -u); do
	pkg="${dir#./}"
	# With FUZZ_TARGETS, a package that defines none of them is not built
	# (an instrumented build takes minutes on a busy machine).
	if [ "$only" != "  " ] && ! grep -qE "^func ($(echo $only | tr ' ' '|'))\(" "$dir"/*_test.go; then
		continue
	fi
	bin="$tmp/$(echo "$pkg" | tr / _).test"
	go test -c -fuzz=. -o "$bin" "./$pkg"
	for target in $(cd "$pkg" && "$bin" -test.list '^Fuzz' | grep '^Fuzz'); do
		if [ "$only" != "  " ] && [[ "$only" != *" $target "* ]]; then
			continue
		fi
		echo "=== $pkg $target ($fuzztime)"
		log="$tmp/$target.log"
		# Go's fuzz coordinator can end a run at its -fuzztime with only
		# "context deadline exceeded" and no failing input (golang/go#56238):
		# not a finding. Such a run is tried once more; a real finding
		# writes "Failing input written" and fails at once.
		for try in 1 2; do
			rc=0
			(cd "$pkg" && "$bin" -test.run='^$' -test.fuzz="^${target}\$" -test.fuzztime="$fuzztime" \
				-test.parallel=1 -test.fuzzcachedir="$cache/$module/$pkg" \
				${FUZZMINIMIZETIME:+-test.fuzzminimizetime="$FUZZMINIMIZETIME"}) >"$log" 2>&1 || rc=$?
			if [ "$rc" -eq 0 ] || grep -q 'Failing input written' "$log" || ! grep -q 'context deadline exceeded' "$log"; then
				break
			fi
			echo "    $target: the fuzz engine stopped with only 'context deadline exceeded' (no failing input); running it once more"
		done
		last="$(grep -o 'elapsed: [^,]*, execs: [0-9]*' "$log" | tail -1 || true)"
		if [ "$rc" -ne 0 ]; then
			cat "$log"
			failed+=("$pkg $target")
			summary+=("$(printf '%-10s %-26s FAIL  %s' "$pkg" "$target" "$last")")
		else
			tail -1 "$log" | grep -q PASS || cat "$log"
			summary+=("$(printf '%-10s %-26s ok    %s' "$pkg" "$target" "$last")")
		fi
	done
done

echo "--- fuzz summary (FUZZTIME=$fuzztime, one worker per target)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}"
	exit 1
fi
