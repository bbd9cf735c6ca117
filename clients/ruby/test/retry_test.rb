# frozen_string_literal: true

# The resume rules (clients/RESUME.md), the session loop against scripted calls, and error decoding;
# no server. Run: ruby -Ilib -rminitest/autorun test/retry_test.rb

require "minitest/autorun"
require "s2sidecar"

module S2Sidecar
  class RetryTest < Minitest::Test
    Codes = GRPC::Core::StatusCodes
    NO_WAIT = RetryPolicy.new(max_attempts: 3, min_backoff: 0, max_backoff: 0)

    def record(seq_num, body = "r#{seq_num}", headers = [])
      V1::SequencedRecord.new(seq_num: seq_num, body: body, headers: headers.map { |n, v| V1::Header.new(name: n, value: v) })
    end

    def batch(*seq_nums, tail: nil)
      V1::ReadSessionResponse.new(records: seq_nums.map { |s| record(s) }, tail: tail)
    end

    def status_bin(code, message, *details)
      Google::Rpc::Status.encode(
        Google::Rpc::Status.new(code: code, message: message, details: details.map { |d| Google::Protobuf::Any.pack(d) })
      )
    end

    def test_retryable_statuses_follow_the_table
      unavailable = Error.new(Codes::UNAVAILABLE, "draining")
      hinted = ResourceExhausted.new(Codes::RESOURCE_EXHAUSTED, "slow down", retry_after: 0.5)
      unhinted = ResourceExhausted.new(Codes::RESOURCE_EXHAUSTED, "quota")
      reset = Error.new(Codes::INTERNAL, "Received RST_STREAM with error code 2")
      bug = Error.new(Codes::INTERNAL, "oops")
      assert Retry.retryable?(unavailable)
      # the sidecar already retried S2 for the call: not again, whatever the code or RetryInfo
      refute Retry.retryable?(Error.new(Codes::UNAVAILABLE, "cannot connect", metadata: { "attempts" => "11" }))
      refute Retry.retryable?(
        ResourceExhausted.new(Codes::RESOURCE_EXHAUSTED, "slow down", retry_after: 0.5, metadata: { "attempts" => "11" })
      )
      assert Retry.retryable?(hinted)
      refute Retry.retryable?(unhinted)
      assert Retry.retryable?(reset)
      refute Retry.retryable?(bug)
      [Codes::NOT_FOUND, Codes::INVALID_ARGUMENT, Codes::CANCELLED, Codes::DEADLINE_EXCEEDED].each do |code|
        refute Retry.retryable?(Error.new(code, "no")), code
      end
    end

    def test_backoff_doubles_up_to_the_cap_with_up_to_as_much_jitter
      policy = RetryPolicy.new
      assert_in_delta 0.1, policy.backoff(1, rand: -> { 0.0 })
      assert_in_delta 0.4, policy.backoff(3, rand: -> { 0.0 })
      assert_in_delta 2.0, policy.backoff(9, rand: -> { 1.0 })
    end

    def test_attempts_stop_at_the_budget_and_honour_retry_info_and_deadlines
      attempts = Retry::Attempts.new(RetryPolicy.new(max_attempts: 3, min_backoff: 0, max_backoff: 0))
      err = Error.new(Codes::UNAVAILABLE, "down")
      assert_equal 0.0, attempts.retry_delay(err)
      assert_equal 0.0, attempts.retry_delay(err)
      assert_nil attempts.retry_delay(err) # the third failure in a row spends the budget
      attempts.progress!
      assert_equal 2.5, attempts.retry_delay(Error.new(Codes::UNAVAILABLE, "later", retry_after: 2.5))
      assert_nil attempts.retry_delay(Error.new(Codes::UNAVAILABLE, "later", retry_after: 2.5), 1.0)
    end

    def test_a_resumed_session_starts_after_what_it_delivered_with_reduced_limits
      req = V1::ReadSessionRequest.new(stream: "s", tail_offset: 5, count: 10, bytes: 1000, until: 99)
      state = Retry::SessionState.new(req, NO_WAIT)
      assert_equal req, state.request # nothing delivered: the original start
      state.on_message(V1::ReadSessionResponse.new(records: [record(7, "abc", [%w[k vv]]), record(8, "")]))
      resumed = state.request
      assert_equal [:seq_num, 9], [resumed.start, resumed.seq_num]
      assert_equal 8, resumed.count
      assert_equal 1000 - (8 + 2 + 3 + 3) - 8, resumed.bytes
      assert_equal 99, resumed.until
      assert_equal 5, req.tail_offset # the original is left alone
    end

    def test_a_heartbeat_moves_a_follower_that_saw_no_record_to_the_tail
      state = Retry::SessionState.new(V1::ReadSessionRequest.new(stream: "s"), NO_WAIT)
      state.on_message(batch(tail: V1::StreamPosition.new(seq_num: 42)))
      assert_equal 42, state.request.seq_num
      err = Unavailable.new(Codes::UNAVAILABLE, "restart", trailers: { "s2-next-seq-num" => "40" })
      refute_nil state.on_error(err)
      assert_equal 42, err.next_seq_num # the session's own position wins over the trailer
    end

    def test_a_used_up_count_ends_the_session
      state = Retry::SessionState.new(V1::ReadSessionRequest.new(stream: "s", seq_num: 0, count: 2), NO_WAIT)
      state.on_message(batch(0, 1))
      assert_nil state.request
    end

    # A call whose stream yields `messages` then raises `error` (if any).
    FakeCall = Struct.new(:messages, :error, :cancelled) do
      def execute
        Enumerator.new do |y|
          messages.each { |m| y << m }
          raise error if error
        end
      end

      def cancel = self.cancelled = true
    end

    def session(calls, **opts)
      requests = []
      session = Session.new(Retry::SessionState.new(V1::ReadSessionRequest.new(stream: "s", seq_num: 0, **opts), NO_WAIT),
                            heartbeats: false, logger: Logger.new(IO::NULL)) do |req|
        requests << req
        calls.shift or flunk("no call left for #{req.inspect}")
      end
      [session, requests]
    end

    def test_the_session_loop_resumes_after_failures_each_record_once
      drain = GRPC::Unavailable.new("draining", { "s2-next-seq-num" => "2" })
      reset = GRPC::Internal.new("Received RST_STREAM with error code 2")
      calls = [FakeCall.new([batch(0, 1)], drain), FakeCall.new([batch(tail: V1::StreamPosition.new(seq_num: 5))], reset),
               FakeCall.new([batch(5), batch(6)], nil)]
      session, requests = session(calls.dup)
      assert_equal [0, 1, 5, 6], session.flat_map(&:records).map(&:seq_num)
      assert_equal [0, 2, 5], requests.map(&:seq_num)
      assert calls.all?(&:cancelled)
    end

    def test_the_session_raises_what_it_does_not_retry_with_where_to_resume
      missing = GRPC::NotFound.new("gone", { "grpc-status-details-bin" => status_bin(5, "gone", Google::Rpc::ErrorInfo.new(reason: "stream_not_found")) })
      session, = session([FakeCall.new([batch(3)], missing)])
      seen = []
      err = assert_raises(StreamNotFound) { session.each { |b| seen.concat(b.records.map(&:seq_num)) } }
      assert_equal [3], seen
      assert_equal 4, err.next_seq_num
    end

    def test_breaking_out_cancels_the_call_and_the_callers_own_errors_pass_through
      call = FakeCall.new([batch(0), batch(1)], nil)
      session, = session([call])
      session.each { break }
      assert call.cancelled
      session, requests = session([FakeCall.new([batch(0)], nil)])
      assert_raises(GRPC::Unavailable) { session.each { raise GRPC::Unavailable, "the caller's" } }
      assert_equal 1, requests.size # not retried
    end

    def test_errors_are_typed_from_status_details_and_trailers
      bad = GRPC::InvalidArgument.new("x", { "grpc-status-details-bin" => status_bin(
        3, "stream: must not be '..'",
        Google::Rpc::BadRequest.new(field_violations: [{ field: "stream", description: "must not be '..'" }])
      ) })
      err = Error.from_grpc(bad)
      assert_instance_of InvalidArgument, err
      assert_equal ["stream", "stream: must not be '..'", "INVALID_ARGUMENT"], [err.field, err.message, err.code_name]

      past = Error.from_grpc(GRPC::OutOfRange.new("past", { "s2-tail-seq-num" => "3", "s2-tail-timestamp" => "17" }))
      assert_equal [3, 17], [past.tail.seq_num, past.tail.timestamp]

      slow = Error.from_grpc(GRPC::ResourceExhausted.new("slow", { "grpc-status-details-bin" => status_bin(
        8, "slow", Google::Rpc::RetryInfo.new(retry_delay: Google::Protobuf::Duration.new(seconds: 1, nanos: 500_000_000))
      ) }))
      assert_equal 1.5, slow.retry_after

      assert_instance_of NotFound, Error.from_grpc(GRPC::NotFound.new("no reason"))
      assert_equal 7, Error.from_grpc(GRPC::Unavailable.new("drain", { "s2-next-seq-num" => "7" })).next_seq_num
    end
  end
end
