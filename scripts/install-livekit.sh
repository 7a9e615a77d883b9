#!/usr/bin/env bash
# Installs livekit-server (pinned) into <repo>/.cache/bin/livekit-server for dev
# mode and the integration tests. Idempotent: does nothing when the binary there
# already reports the pinned version.
#
# It builds with `go install` from a temporary directory, outside this module,
# so livekit-server's dependency graph never touches our go.mod/go.sum.
set -euo pipefail

LIVEKIT_VERSION="${LIVEKIT_VERSION:-1.13.5}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${REPO}/.cache/bin"
TARGET="${BIN_DIR}/livekit-server"

if [[ -x "${TARGET}" ]] && "${TARGET}" --version 2>/dev/null | grep -q "version ${LIVEKIT_VERSION}\$"; then
	echo "livekit-server ${LIVEKIT_VERSION} already installed at ${TARGET}"
	exit 0
fi

command -v go >/dev/null 2>&1 || { echo "install-livekit: go is required" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT

echo "building livekit-server v${LIVEKIT_VERSION} (a few minutes on a small machine)..."
(
	cd "${WORK}"
	GOBIN="${WORK}/bin" CGO_ENABLED=0 GOFLAGS= GOWORK=off \
		go install "github.com/livekit/livekit-server/cmd/server@v${LIVEKIT_VERSION}"
)

mkdir -p "${BIN_DIR}"
# Move into place via a temp name in the same directory so a concurrent reader
# never sees a half-written binary.
cp "${WORK}/bin/server" "${TARGET}.tmp.$$"
chmod 0755 "${TARGET}.tmp.$$"
mv -f "${TARGET}.tmp.$$" "${TARGET}"

"${TARGET}" --version
