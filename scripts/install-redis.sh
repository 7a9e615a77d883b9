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

if ! command -v redis-server >/dev/null 2>&1; then
	"$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" redis-server
fi
redis-server --version >&2
