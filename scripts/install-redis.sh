#!/usr/bin/env bash
# Installs Debian's redis-server package when redis-server is missing.
# Idempotent: a machine that has it is left alone. The package's own service
# is never started: `make soak` starts a throwaway server on loopback.
#
#   scripts/install-redis.sh
#
# Dev mode does not need it (livekit-server's Redis is an in-process
# miniredis there); `make soak` does, because miniredis keeps the name of
# every key ever written, which a long run would measure instead of the
# services.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
	exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	sudo=(sudo)
fi
# policy-rc.d answering 101 keeps the package's postinst from starting the
# service where an init system would.
policy=/usr/sbin/policy-rc.d
created_policy=false
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 755 "$policy"
	created_policy=true
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends redis-server >/dev/null
if [ "$created_policy" = true ]; then
	"${sudo[@]}" rm -f "$policy"
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	"${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
redis-server --version >&2
