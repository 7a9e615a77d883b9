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

"$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" prometheus

prometheus --version | head -1
promtool --version | head -1
