#!/usr/bin/env bash
# Installs what the Ruby client needs, from Debian packages (no rubygems.org): Ruby, gRPC for Ruby
# (ruby-grpc, which brings the google-protobuf runtime), Bundler (ruby-bundler: Debian's ruby
# package has only bundle3.1, not `bundle`, which an app's Gemfile is installed with) and the protoc
# plugin (ruby-grpc-tools: grpc_tools_ruby_protoc and grpc_ruby_plugin, used by tools/genproto_ruby.py).
# Idempotent: does nothing when everything is already there. Needs root (or sudo) and apt.
# The gems are pinned: Debian bookworm ships exactly these versions (only its package revisions move,
# with security fixes), and the client is tested against them; any other version fails here, loudly.
set -euo pipefail
pkgs=(ruby ruby-grpc ruby-grpc-tools ruby-google-protobuf ruby-bundler)
pinned=("grpc 1.51.1" "google-protobuf 3.21.12" "grpc-tools 1.51.1" "bundler 2.3.15")
pins_hold() {
  local pin name version
  for pin in "${pinned[@]}"; do
    name="${pin% *}" version="${pin#* }"
    ruby -e 'gem ARGV[0], "= #{ARGV[1]}"' "$name" "$version" 2>/dev/null || {
      echo "install-toolchain: the Ruby client is tested with the gem $name $version, which is not installed" \
        "(found: $(gem list --exact "$name" 2>/dev/null | tail -n 1)); install it or update the pin in $0" >&2
      return 1
    }
  done
}
have() {
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
  done
  command -v ruby >/dev/null && command -v rake >/dev/null && command -v bundle >/dev/null &&
    command -v grpc_tools_ruby_protoc >/dev/null && command -v grpc_ruby_plugin >/dev/null &&
    ruby -e 'require "grpc"; require "google/protobuf"' 2>/dev/null
}
if have; then
  pins_hold || exit 1
  echo "install-toolchain: already installed ($(ruby --version))"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
have || { echo "install-toolchain: packages installed but something is still missing" >&2; exit 1; }
pins_hold || exit 1
echo "install-toolchain: installed $(ruby --version)"
