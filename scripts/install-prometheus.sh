#!/usr/bin/env bash
# Installs Debian's prometheus package (the prometheus server and promtool)
# when either is missing. Idempotent: a machine that has both is left alone.
# The package's own service is never started: the observability test starts
# its own Prometheus on a temporary directory and port. CI calls this before
# `promtool check rules` / `promtool test rules` and tests/observability.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
	exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	sudo=(sudo)
fi

# policy-rc.d answering 101 keeps the package's postinst from starting the
# service where an init system would (containers usually have none anyway).
policy=/usr/sbin/policy-rc.d
created_policy=false
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 755 "$policy"
	created_policy=true
fi
cleanup() {
	if [ "$created_policy" = true ]; then
		"${sudo[@]}" rm -f "$policy"
	fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# Debian's unit may still have been started under systemd; stop it so it
# does not hold :9090 (the test picks free ports, but operators may not).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	"${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

prometheus --version | head -1
promtool --version | head -1
