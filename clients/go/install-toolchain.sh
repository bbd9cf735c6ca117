#!/usr/bin/env bash
# Installs what the Go client needs, from Debian packages (no Go module proxy):
# Go 1.19, grpc-go 1.33, protobuf-go 1.28, genproto, github.com/golang/protobuf 1.5 (grpc-go's codec
# calls it; Debian's default 1.3 panics on messages from today's protoc-gen-go), protoc-gen-go and
# protoc-gen-go-grpc.
# Idempotent: does nothing when everything is already there. Needs root (or sudo) and apt.
set -euo pipefail
pkgs=(golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-google-genproto-dev
      golang-github-golang-protobuf-1-5-dev protoc-gen-go protoc-gen-go-grpc)
have() {
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
  done
  command -v go >/dev/null && command -v protoc-gen-go >/dev/null && command -v protoc-gen-go-grpc >/dev/null &&
    [ -d /usr/share/gocode/src/google.golang.org/grpc ] &&
    [ -d /usr/share/gocode/src/google.golang.org/protobuf ] &&
    [ -d /usr/share/gocode/src/google.golang.org/genproto/googleapis/rpc/errdetails ]
}
if have; then
  echo "install-toolchain: already installed ($(go version))"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
have || { echo "install-toolchain: packages installed but something is still missing" >&2; exit 1; }
echo "install-toolchain: installed $(go version)"
