#!/usr/bin/env bash
# Installs one Debian package without starting its service: the project's
# scripts start their own throwaway servers (on loopback, temporary
# directories, free ports), and a system service would hold the default
# port. Called by install-postgres.sh, install-prometheus.sh and
# install-redis.sh, each of which first checks whether its binaries are
# already there.
#
#   scripts/apt-install.sh PACKAGE [SERVICE]   SERVICE defaults to PACKAGE
set -euo pipefail

pkg="$1"
service="${2:-$1}"
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
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null

# Under systemd the unit may have been started anyway; stop and disable it.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	"${sudo[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
fi
