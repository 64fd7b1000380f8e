#!/usr/bin/env bash
# Runs the test suite: every package, fuzz seed corpora included, then the
# gRPC example, which is a module of its own (so that the library does not
# depend on gRPC). Extra arguments go to go test (CI adds -race).
set -euo pipefail
cd "$(dirname "$0")"
go test -count=1 -timeout 10m "$@" ./...
(cd examples/grpc && go test -count=1 -timeout 5m "$@" ./...)
