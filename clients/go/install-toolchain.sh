#!/usr/bin/env bash
# Installs the protoc plugins for the Go stubs into <repo>/.tools/bin and downloads the Go module's
# dependencies (go.sum pins them), so `tools/genproto.py` and `go build` find everything later.
# Needs Go >= the `go` line of go.mod (does nothing without Go). Idempotent: an installed plugin of
# the pinned version is kept.
#   clients/go/install-toolchain.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export GOBIN="$repo/.tools/bin"

# Pinned; bump together with the stubs (`python tools/genproto.py` then shows the diff).
# protoc-gen-go is versioned with google.golang.org/protobuf, which go.mod pins too.
plugins=(
  "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
  "google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
)

if ! command -v go >/dev/null; then
  # Not fatal for scripts/install-test-tools: tests/clients/test_go.py skips, saying so.
  echo "install-toolchain: skipped: go is not on PATH (the module needs $(grep '^go ' "$here/go.mod"))" >&2
  exit 0
fi
mkdir -p "$GOBIN"
for spec in "${plugins[@]}"; do
  pkg="${spec%@*}" version="${spec#*@}" bin="$GOBIN/${pkg##*/}"
  # `go version -m` reads the module version the binary was built from.
  if [ -x "$bin" ] && go version -m "$bin" | grep -qE "^[[:space:]]+mod[[:space:]].*[[:space:]]$version([[:space:]]|$)"; then
    echo "install-toolchain: ${pkg##*/} $version already installed"
  else
    go install "$spec"
    echo "install-toolchain: installed ${pkg##*/} $version into $GOBIN"
  fi
done
(cd "$here" && go mod download)
echo "install-toolchain: modules downloaded ($(go version))"
