#!/usr/bin/env ruby
# frozen_string_literal: true

# Reads S2 streams through an s2-sidecar (same command line as the Go and Node.js examples):
#
#   ruby example.rb -addr 127.0.0.1:50051 read   -stream orders -seq-num 0 -count 100
#   ruby example.rb -addr 127.0.0.1:50051 read   -stream orders -timestamp 1700000005000 -until 1700000008000
#   ruby example.rb -addr 127.0.0.1:50051 follow -stream orders -tail-offset 10 -n 11
#   ruby example.rb -addr 127.0.0.1:50051 tail   -stream orders
#   ruby example.rb -addr unix:/run/s2-sidecar.sock tail -stream orders
#
# -basin names the basin (default: the sidecar's); -token (or env S2_SIDECAR_APP_TOKEN) sends the
# sidecar's app token; -no-retry turns retries and resuming off (a first call still waits for the
# sidecar to start). An encrypted stream's key (base64): -encryption-key is the client's (handed to
# it as the raw bytes, a binary String), -call-encryption-key this call's (handed over as the text),
# which wins. Prints one JSON object per line: a record, a tail, or an error (then exits with
# status 2).

require "base64"
require "json"
require_relative "lib/s2sidecar"

USAGE = "usage: example.rb [-addr ADDR] [-no-retry] read|follow|tail -stream NAME [options]"
BOOLEAN_FLAGS = %w[no-retry].freeze
READ_FLAGS = { "seq-num" => :seq_num, "timestamp" => :timestamp, "tail-offset" => :tail_offset,
               "count" => :count, "until" => :until }.freeze

# "-flag value" pairs, flags without a value (BOOLEAN_FLAGS), and one bare word, the command.
def parse(argv)
  opts = {}
  command = nil
  until argv.empty?
    arg = argv.shift
    if BOOLEAN_FLAGS.include?(arg.sub(/\A-+/, ""))
      opts[arg.sub(/\A-+/, "")] = true
    elsif arg.start_with?("-")
      opts[arg.sub(/\A-+/, "")] = argv.shift or abort(USAGE)
    else
      command = arg
    end
  end
  [command, opts]
end

def print_record(record)
  puts JSON.generate(
    seq_num: record.seq_num,
    timestamp: record.timestamp,
    headers: record.headers.map { |h| [text(h.name), text(h.value)] },
    body: text(record.body)
  )
end

# Bytes as text for JSON (invalid UTF-8 replaced, like Node's Buffer#toString).
def text(bytes) = bytes.dup.force_encoding(Encoding::UTF_8).scrub

def print_error(err)
  out = {
    # "NOT_FOUND" -> "NotFound", the spelling grpcurl and grpc-go use
    error: err.code_name.split("_").map(&:capitalize).join,
    type: err.class.name.split("::").last,
    reason: err.reason,
    message: err.message
  }
  out[:field] = err.field if err.is_a?(S2Sidecar::InvalidArgument) && err.field
  out[:retry_after] = err.retry_after if err.retry_after
  out[:tail_seq_num] = err.tail.seq_num if err.is_a?(S2Sidecar::RangeNotSatisfiable)
  out[:next_seq_num] = err.next_seq_num if err.next_seq_num
  out[:hint] = "no such stream: check the name or create it" if err.is_a?(S2Sidecar::StreamNotFound)
  puts JSON.generate(out)
end

command, opts = parse(ARGV.dup)
abort(USAGE) unless %w[read follow tail].include?(command) && opts["stream"]
$stdout.sync = true # a follower's records show up as they arrive

stream = opts["stream"]
read = READ_FLAGS.filter_map { |flag, key| [key, Integer(opts[flag])] if opts[flag] }.to_h
read[:encryption_key] = opts["call-encryption-key"] if opts["call-encryption-key"]
token = opts["token"] || ENV["S2_SIDECAR_APP_TOKEN"]
client_key = opts["encryption-key"] && Base64.strict_decode64(opts["encryption-key"]) # binary: the raw bytes
client = S2Sidecar::Client.new(opts["addr"] || ENV["S2_SIDECAR_ADDRESS"] || S2Sidecar::Client::DEFAULT_TARGET,
                               basin: opts["basin"], token: token.to_s.empty? ? nil : token,
                               encryption_key: client_key,
                               retry_policy: opts["no-retry"] ? S2Sidecar::RetryPolicy::NONE
                                                              : S2Sidecar::RetryPolicy.new)
begin
  case command
  when "read"
    client.read(stream, **read).records.each { |r| print_record(r) }
  when "follow"
    limit = Integer(opts.fetch("n", "0")) # 0: until the session ends by itself
    records = client.read_session(stream, **read).lazy.flat_map(&:records)
    records = records.take(limit) if limit.positive? # ending the loop early cancels the session
    records.each { |r| print_record(r) }
  when "tail"
    tail = client.check_tail(stream)
    puts JSON.generate(tail: { seq_num: tail.seq_num, timestamp: tail.timestamp })
  end
rescue S2Sidecar::Error => e
  print_error(e)
  exit 2
ensure
  client.close
end
