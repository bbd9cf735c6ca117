#!/usr/bin/env ruby
# frozen_string_literal: true

# The driver of the restart test (clients/RESUME.md, tests/clients/restarts.py): one auto-resuming
# ReadSession, printing "<seq_num> <body>" per record.
#
#   ruby restart-reader.rb --addr 127.0.0.1:50051 --stream orders --start-seq-num 0 [--count 100000]
#                          [--encryption-key BASE64]   (the client's key, for an encrypted stream)
#
# Exits 0 when the session ends; on an error it cannot retry, prints "error <STATUS>: <message>" to
# stderr and exits 1. Resumes are logged to stderr.

require "logger"
require "optparse"
require_relative "lib/s2sidecar"

opts = { "start-seq-num": 0 } # parse!(into:) keys options by their long names
OptionParser.new do |o|
  o.on("--addr ADDR")
  o.on("--stream STREAM")
  o.on("--start-seq-num N", Integer)
  o.on("--count N", Integer)
  o.on("--encryption-key KEY")
end.parse!(into: opts)

logger = Logger.new($stderr, progname: "resume")
client = S2Sidecar::Client.new(opts.fetch(:addr), logger: logger, encryption_key: opts[:"encryption-key"])
begin
  client.read_session(opts.fetch(:stream), seq_num: opts[:"start-seq-num"], count: opts[:count]) do |batch|
    # one write per batch: $stdout is buffered, and the test reads lines as they come
    $stdout.write(batch.records.map { |r| "#{r.seq_num} #{r.body}\n" }.join)
    $stdout.flush
  end
rescue S2Sidecar::Error => e
  warn "error #{e.code_name}: #{e.message}"
  exit 1
ensure
  client.close
end
