#!/usr/bin/env bash
# Installs what the Ruby client needs, from Debian packages (no rubygems.org): Ruby, gRPC for Ruby
# (ruby-grpc, which brings the google-protobuf runtime), and its protoc plugin (ruby-grpc-tools:
# grpc_tools_ruby_protoc and grpc_ruby_plugin, used by tools/genproto_ruby.py).
# Idempotent: does nothing when everything is already there. Needs root (or sudo) and apt.
set -euo pipefail
pkgs=(ruby ruby-grpc ruby-grpc-tools ruby-google-protobuf)
have() {
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
  done
  command -v ruby >/dev/null && command -v rake >/dev/null &&
    command -v grpc_tools_ruby_protoc >/dev/null && command -v grpc_ruby_plugin >/dev/null &&
    ruby -e 'require "grpc"; require "google/protobuf"' 2>/dev/null
}
if have; then
  echo "install-toolchain: already installed ($(ruby --version))"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
have || { echo "install-toolchain: packages installed but something is still missing" >&2; exit 1; }
echo "install-toolchain: installed $(ruby --version)"
