#!/usr/bin/env bash
# Builds the example offline against Debian's Go sources (/usr/share/gocode), in GOPATH mode:
# a throwaway GOPATH links this repository in as github.com/s2-sidecar/s2-sidecar.
#   clients/go/build.sh [OUTPUT]     (default: clients/go/bin/s2sidecar-example)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$here/bin/s2sidecar-example}"
gopath="$(mktemp -d)"
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/github.com/s2-sidecar"
ln -s "$repo" "$gopath/src/github.com/s2-sidecar/s2-sidecar"
export GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOPROXY=off GOFLAGS= GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
cd "$gopath/src/github.com/s2-sidecar/s2-sidecar/clients/go"
go vet ./cmd/... ./s2sidecarv1/...
go build -o "$out" ./cmd/s2sidecar-example
echo "built $out"
