# frozen_string_literal: true

require_relative "errors"

module S2Sidecar
  # How calls ride out a sidecar restart (clients/RESUME.md): sessions resume where they stood,
  # read and check_tail retry within their timeout.
  #
  # max_attempts: attempts in a row without progress before the last error is raised (1: never
  # retry). Attempt n after a failure waits min(min_backoff * 2**(n-1), max_backoff) plus up to as
  # much again of jitter, or the server's RetryInfo delay if that is longer. The defaults are S2's:
  # about a minute of retries, enough for a 30 s restart.
  RetryPolicy = Struct.new(:max_attempts, :min_backoff, :max_backoff, keyword_init: true) do
    def initialize(max_attempts: 60, min_backoff: 0.1, max_backoff: 1.0)
      raise ArgumentError, "max_attempts must be at least 1" if max_attempts < 1
      raise ArgumentError, "need 0 <= min_backoff <= max_backoff" unless min_backoff.between?(0, max_backoff)

      super
    end

    # Seconds to wait before retry number `attempt` (1, 2, ...).
    def backoff(attempt, rand: Kernel.method(:rand))
      base = [min_backoff * (2**(attempt - 1)), max_backoff].min
      base + (rand.call * base)
    end

    # gRPC's own reconnect backoff within the same bounds: its default waits up to 2 minutes before
    # reconnecting to a sidecar that went away, and every attempt until then fails at once.
    def channel_args
      lo = (min_backoff * 1000).round
      {
        "grpc.initial_reconnect_backoff_ms" => lo,
        "grpc.min_reconnect_backoff_ms" => lo,
        "grpc.max_reconnect_backoff_ms" => (max_backoff * 1000).round
      }
    end
  end

  RetryPolicy::NONE = RetryPolicy.new(max_attempts: 1)

  # The retry rules and a session's position, without I/O: Client drives them.
  module Retry
    codes = GRPC::Core::StatusCodes
    RETRY_AFTER_HINTED = [codes::RESOURCE_EXHAUSTED, codes::ABORTED].freeze
    # INTERNAL / UNKNOWN are server bugs unless the message shows the connection itself broke.
    TRANSPORT_CODES = [codes::INTERNAL, codes::UNKNOWN].freeze
    TRANSPORT_FAILURE = /RST_STREAM|Stream removed|Connection reset/

    # The table in RESUME.md. CANCELLED and DEADLINE_EXCEEDED are the caller's own doing.
    def self.retryable?(err)
      return false if err.metadata.key?("attempts") # the sidecar already retried S2 for this call
      return true if err.code == GRPC::Core::StatusCodes::UNAVAILABLE
      return !err.retry_after.nil? if RETRY_AFTER_HINTED.include?(err.code)

      TRANSPORT_CODES.include?(err.code) && TRANSPORT_FAILURE.match?(err.message)
    end

    # S2's metered size of a record, the unit of a `bytes` limit.
    def self.metered_bytes(record)
      8 + (2 * record.headers.size) + record.headers.sum { |h| h.name.bytesize + h.value.bytesize } +
        record.body.bytesize
    end

    # Failures in a row since the last progress, against a policy's budget.
    class Attempts
      def initialize(policy)
        @policy = policy
        @failures = 0
      end

      def progress! = @failures = 0

      # Seconds to wait before trying again after `err`, or nil to raise it: not retryable, budget
      # spent, or (for a call with a deadline) no time left for another attempt.
      def retry_delay(err, remaining = nil)
        return nil unless Retry.retryable?(err)

        @failures += 1
        return nil if @failures >= @policy.max_attempts

        delay = [@policy.backoff(@failures), err.retry_after || 0.0].max
        delay unless remaining && delay >= remaining
      end
    end

    # One resuming ReadSession: its position, what it has delivered, and the request that
    # continues it. Feed it every message (heartbeats included) and every failure.
    class SessionState
      attr_reader :next_seq_num, :caught_up

      def initialize(request, policy)
        @original = request
        @attempts = Attempts.new(policy)
        @next_seq_num = nil # until a record or heartbeat says where the session is
        @delivered_count = 0
        @delivered_bytes = 0
        @caught_up = false # what the last message said; a resume starts behind
      end

      def on_message(msg)
        @caught_up = msg.caught_up
        if msg.records.any?
          @next_seq_num = msg.records.last.seq_num + 1
          @delivered_count += msg.records.size
          @delivered_bytes += msg.records.sum { |r| Retry.metered_bytes(r) }
        elsif msg.tail
          # a heartbeat: caught up at the tail, so a follower that has seen no record yet still
          # reads what is appended while the sidecar is down
          @next_seq_num = msg.tail.seq_num
        else
          return
        end
        @attempts.progress!
      end

      # Seconds to wait before #request, or nil to raise `err`. Either way `err` is told where to
      # resume: the session's own position wins over the sidecar's s2-next-seq-num.
      def on_error(err)
        @caught_up = false
        err.next_seq_num = @next_seq_num if @next_seq_num
        @attempts.retry_delay(err)
      end

      # The request for the next attempt, or nil when a count or bytes limit is already used up.
      def request
        req = @original.dup
        req.seq_num = @next_seq_num if @next_seq_num # the oneof: replaces a timestamp or tail_offset start
        { count: @delivered_count, bytes: @delivered_bytes }.each do |field, used|
          limit = req.public_send(field)
          next unless limit&.positive? # unset or 0: no limit

          return nil if limit <= used

          req.public_send(:"#{field}=", limit - used)
        end
        req
      end
    end
  end
end
