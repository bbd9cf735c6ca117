# frozen_string_literal: true

# A Ruby client for s2-sidecar: S2 (s2.dev) stream reads over localhost gRPC.
#
#   require "s2sidecar"
#   client = S2Sidecar::Client.new(basin: "my-basin")
#
# See S2Sidecar::Client, and S2Sidecar::Error for the typed errors.
require_relative "s2sidecar/client"
