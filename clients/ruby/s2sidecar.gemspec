# frozen_string_literal: true

Gem::Specification.new do |s|
  s.name = "s2sidecar"
  s.version = "0.1.0"
  s.summary = "Read S2 (s2.dev) streams through an s2-sidecar over localhost gRPC"
  s.description = "S2Sidecar::Client: read, read_session (resuming across sidecar restarts) and " \
                  "check_tail, with typed errors."
  s.authors = ["s2-sidecar"]
  s.license = "Apache-2.0"
  s.required_ruby_version = ">= 3.1"
  s.files = Dir["lib/**/*.rb", "README.md"]
  # From the versions Debian 12 ships (install-toolchain.sh). Below 4: the generated stubs (Debian's
  # protoc 3.21) use the descriptor DSL, which google-protobuf 4 (protobuf 26 and later) removed.
  s.add_dependency "google-protobuf", ">= 3.21", "< 4"
  s.add_dependency "grpc", ">= 1.51"
end
