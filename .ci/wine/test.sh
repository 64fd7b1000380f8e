#!/usr/bin/env bash
# Runs the project's tests as windows/amd64 binaries under Wine, in a
# private prefix that is deleted afterwards (or in $WINEPREFIX if set and
# already prepared). Extra arguments go to go test, e.g. -race or -run X.
# Installs Wine and mingw on Debian if missing (needs root for that).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."

# The packages that run under Wine: all of the library's, the CLI's, the
# demos' and the examples', and then the gRPC example, a module of its own.
# The others are Linux-only by nature (internal/testns: namespaces;
# c/interop: the C library is POSIX; examples/containers), as are the
# examples' tests that stop a server with SIGTERM.
packages=(./internal/ring ./internal/wire ./internal/wake ./internal/sys ./internal/testproc
  . ./cmd/shmlink ./examples/filewalk ./examples/chat ./examples/http ./examples/internal/transport
  ./internal/bench ./internal/bench/limit ./internal/bench/workload)

own=""
if [ -z "${WINEPREFIX:-}" ] || [ ! -f "$WINEPREFIX/system.reg" ]; then
  WINEPREFIX=$(mktemp -d /tmp/shmlink-wine.XXXXXX)
  own=$WINEPREFIX
fi
cleanup() {
  WINEPREFIX="$WINEPREFIX" /usr/lib/wine/wineserver64 -k 2>/dev/null || true
  if [ -n "$own" ]; then rm -rf "$own"; fi
}
trap cleanup EXIT
if [ -n "$own" ]; then "$here/setup.sh" "$WINEPREFIX" >/dev/null; fi
export WINEPREFIX PATH="$here:$PATH"

race=()
for a in "$@"; do
  if [ "$a" = -race ]; then race=(CGO_ENABLED=1 CC=x86_64-w64-mingw32-gcc); fi
done
# Wine's process creation fails now and then: a test binary that cannot
# start, or that exits at once with no output ("exit status 5"; the test
# helpers retry a child's start themselves, internal/testproc). A package
# that fails is run once more, alone, and the step fails only if it fails
# again; the retry is announced, so that a flake of our own still shows.
log=$(mktemp)
trap 'cleanup; rm -f "$log"' EXIT
gotest() {
  env GOOS=windows GOARCH=amd64 "${race[@]}" go test -count=1 "$@" 2>&1 | tee "$log"
}
again() {
  local failed
  failed=$(awk '$1 == "FAIL" && $2 ~ /^github\.com\// {print $2}' "$log" | sort -u)
  if [ -z "$failed" ]; then return 1; fi
  echo "== Wine: running again, once, what failed:" $failed
  env GOOS=windows GOARCH=amd64 "${race[@]}" go test -count=1 "$@" $failed
}
gotest -timeout 10m "$@" "${packages[@]}" || again -timeout 10m "$@"
(cd examples/grpc && { gotest -timeout 5m "$@" ./... || again -timeout 5m "$@"; })
