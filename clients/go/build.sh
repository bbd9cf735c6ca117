#!/usr/bin/env bash
# Vets and builds the Go module (module mode; go.sum pins every dependency) and its commands:
#   clients/go/build.sh [OUTDIR]     (default: clients/go/bin/: s2sidecar-example, s2sidecar-restart-reader)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/bin}"
cd "$here"
export GOFLAGS="${GOFLAGS:-} -mod=readonly"  # fail on a go.mod/go.sum that needs `go mod tidy`
go vet ./...
go build -o "$out/" ./cmd/...
echo "built $out/s2sidecar-example $out/s2sidecar-restart-reader"
