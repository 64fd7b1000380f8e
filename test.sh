#!/usr/bin/env bash
# Runs the test suite: every package, fuzz seed corpora included.
# Extra arguments go to go test (CI adds -race).
set -euo pipefail
cd "$(dirname "$0")"
go test -count=1 -timeout 10m "$@" ./...
