# frozen_string_literal: true

# S2Sidecar::Client over real gRPC on loopback against a scripted in-process StreamService: what it
# retries, where a session resumes, what it raises. Run: ruby -Ilib -rminitest/autorun test/client_test.rb

require "minitest/autorun"
require "s2sidecar"

module S2Sidecar
  class ClientTest < Minitest::Test
    # Answers each call with the next scripted step: a message to return, an exception to raise,
    # or (for ReadSession) an array of messages then optionally an exception. Records every request.
    class ScriptedService < V1::StreamService::Service
      attr_reader :requests, :tokens, :keys

      def initialize(script)
        super()
        @script = script
        @requests = []
        @tokens = []
        @keys = []
      end

      def read(req, call) = answer(req, call)
      def check_tail(req, call) = answer(req, call)

      def read_session(req, call)
        step = answer(req, call)
        Enumerator.new do |y|
          step.each { |m| m.is_a?(Exception) ? raise(m) : y << m }
        end
      end

      private

      def answer(req, call)
        @requests << req
        @tokens << call.metadata["authorization"]
        @keys << call.metadata[EncryptionKey::HEADER]
        step = @script.shift or raise GRPC::Internal, "script ran out"
        raise step if step.is_a?(Exception)

        step
      end
    end

    FAST = RetryPolicy.new(max_attempts: 5, min_backoff: 0.01, max_backoff: 0.02)

    def serve(*script, **client_options)
      @service = ScriptedService.new(script)
      @server = GRPC::RpcServer.new(pool_size: 2)
      port = @server.add_http2_port("127.0.0.1:0", :this_port_is_insecure)
      @server.handle(@service)
      @thread = Thread.new { @server.run_till_terminated }
      @server.wait_till_running
      @client = Client.new("127.0.0.1:#{port}", basin: "test-basin", token: "t0k", timeout: 10, retry_policy: FAST,
                                                **client_options)
    end

    def teardown
      @client&.close
      @server&.stop
      @thread&.join
    end

    def tail(seq_num) = V1::CheckTailResponse.new(tail: V1::StreamPosition.new(seq_num: seq_num, timestamp: 7))

    def batch(*seq_nums, tail: nil)
      V1::ReadSessionResponse.new(records: seq_nums.map { |s| V1::SequencedRecord.new(seq_num: s, body: "r#{s}") },
                                  tail: tail)
    end

    def test_unary_calls_retry_unavailable_then_succeed
      serve(GRPC::Unavailable.new("restarting"), GRPC::Unavailable.new("restarting"), tail(20))
      position = @client.check_tail("orders", max_staleness_ms: 0)
      assert_equal [20, 7], [position.seq_num, position.timestamp]
      assert_equal 3, @service.requests.size
      assert_equal ["test-basin", "orders", 0], @service.requests.last.then { |r| [r.basin, r.stream, r.max_staleness_ms] }
      assert_equal ["Bearer t0k"] * 3, @service.tokens
    end

    def test_unary_calls_raise_what_they_do_not_retry_at_once
      details = Google::Rpc::Status.new(code: 5, message: "no such stream",
                                        details: [Google::Protobuf::Any.pack(Google::Rpc::ErrorInfo.new(reason: "stream_not_found"))])
      serve(GRPC::NotFound.new("no such stream", { "grpc-status-details-bin" => Google::Rpc::Status.encode(details) }))
      err = assert_raises(StreamNotFound) { @client.read("orders") }
      assert_equal ["stream_not_found", "no such stream"], [err.reason, err.message]
      assert_equal 1, @service.requests.size
    end

    def test_with_no_options_every_call_sends_the_stream_alone
      serve(V1::ReadResponse.new, [], tail(3))
      default = Client.new("127.0.0.1:1")
      assert_equal [30, 60], [default.timeout, default.retry_policy.max_attempts]
      default.close
      @client.read("orders")
      @client.read_session("orders").to_a
      @client.check_tail("orders")
      assert_equal [V1::ReadRequest.new(basin: "test-basin", stream: "orders"),
                    V1::ReadSessionRequest.new(basin: "test-basin", stream: "orders"),
                    V1::CheckTailRequest.new(basin: "test-basin", stream: "orders")], @service.requests
      assert_nil @service.requests[0].start # no start: the proto's tail
      refute @service.requests[2].has_max_staleness_ms?
    end

    def test_a_read_at_the_tail_without_wait_says_to_pass_a_start
      at_tail = -> { GRPC::OutOfRange.new("start is the tail; set wait", { "s2-tail-seq-num" => "4" }) }
      serve(at_tail.call, at_tail.call)
      err = assert_raises(RangeNotSatisfiable) { @client.read("orders") }
      assert_match(/pass a start, e.g. seq_num: 0/, err.message)
      assert_equal 4, err.tail.seq_num
      err = assert_raises(RangeNotSatisfiable) { @client.read("orders", seq_num: 4) }
      refute_match(/pass a start/, err.message)
    end

    def test_unary_calls_raise_the_last_error_when_the_budget_is_spent
      serve(*Array.new(5) { GRPC::Unavailable.new("down") })
      assert_raises(Unavailable) { @client.check_tail("orders") }
      assert_equal 5, @service.requests.size
    end

    def test_a_session_resumes_after_the_last_record_with_the_rest_of_its_count
      serve([batch(3, 4), GRPC::Unavailable.new("draining", { "s2-next-seq-num" => "5" })],
            [GRPC::Internal.new("Received RST_STREAM with error code 2")],
            [batch(5), batch(6)])
      seqs = @client.read_session("orders", tail_offset: 4, count: 4).flat_map { |b| b.records.map(&:seq_num) }
      assert_equal [3, 4, 5, 6], seqs
      starts = @service.requests.map { |r| [r.start, r.public_send(r.start), r.count] }
      assert_equal [[:tail_offset, 4, 4], [:seq_num, 5, 2], [:seq_num, 5, 2]], starts
    end

    def test_a_session_cut_with_cancelled_resumes_the_caller_never_cancelled_it
      # gRPC for Ruby reports some connections a restarting sidecar dropped as CANCELLED.
      serve([batch(3, 4), GRPC::Cancelled.new("Cancelled")], [batch(5)])
      seqs = @client.read_session("orders", seq_num: 3, count: 3).flat_map { |b| b.records.map(&:seq_num) }
      assert_equal [3, 4, 5], seqs
      assert_equal 5, @service.requests.last.seq_num
    end

    def test_a_follower_resumes_from_a_heartbeats_tail_and_skips_heartbeats
      serve([batch(tail: V1::StreamPosition.new(seq_num: 9)), GRPC::Unavailable.new("draining")], [batch(9)])
      assert_equal [[9]], @client.read_session("orders").map { |b| b.records.map(&:seq_num) }
      assert_equal 9, @service.requests.last.seq_num
    end

    def test_resume_off_raises_the_first_failure_with_where_to_resume
      serve([batch(0), GRPC::Unavailable.new("draining")])
      seen = []
      err = assert_raises(Unavailable) do
        @client.read_session("orders", seq_num: 0, resume: false) { |b| seen << b.records.map(&:seq_num) }
      end
      assert_equal [[0]], seen
      assert_equal 1, err.next_seq_num
      assert_equal 1, @service.requests.size
    end

    def caught_up(msg) = msg.tap { |m| m.caught_up = true }

    def test_caught_up_is_what_the_last_message_said_and_false_after_a_resume
      serve([batch(0), caught_up(batch(1)), GRPC::Unavailable.new("down")],
            [batch(2), caught_up(batch(tail: V1::StreamPosition.new(seq_num: 3)))])
      session = @client.read_session("orders", seq_num: 0)
      refute session.caught_up?
      seen = session.map { |b| [b.records.first.seq_num, b.caught_up, session.caught_up?] }
      # 0, 1 (caught up), then the resume: 2 (behind again); the hidden heartbeat at 3 says caught up
      assert_equal [[0, false, false], [1, true, true], [2, false, false]], seen
      assert session.caught_up?
    end

    def test_ignore_command_records_is_sent_with_every_resume_and_read_retry
      serve([batch(0), GRPC::Unavailable.new("down")], [batch(2)],
            GRPC::Unavailable.new("down"), V1::ReadResponse.new)
      seqs = @client.read_session("orders", seq_num: 0, ignore_command_records: true)
                    .flat_map { |b| b.records.map(&:seq_num) }
      assert_equal [0, 2], seqs
      @client.read("orders", seq_num: 0, count: 2, ignore_command_records: true)
      sessions, reads = @service.requests.partition { |r| r.is_a?(V1::ReadSessionRequest) }
      assert_equal [[0, true], [1, true]], sessions.map { |r| [r.seq_num, r.ignore_command_records] }
      assert_equal [[2, true]] * 2, reads.map { |r| [r.count, r.ignore_command_records] }
    end

    def test_ignore_command_records_with_a_count_or_bytes_is_refused_before_any_call
      serve
      [{ count: 3 }, { bytes: 100 }].each do |limit|
        err = assert_raises(ArgumentError) { @client.read_session("orders", ignore_command_records: true, **limit) }
        assert_match(/leave the limit to the app/, err.message)
      end
      assert_empty @service.requests
    end

    def test_more_than_one_start_is_refused_before_any_call
      serve
      assert_raises(ArgumentError) { @client.read("orders", seq_num: 1, timestamp: 2) }
      assert_empty @service.requests
    end

    RAW_KEY = ("\x07" * 32).b
    KEY = Base64.strict_encode64(RAW_KEY)
    OTHER = Base64.strict_encode64(("\x08" * 32).b)

    def test_the_clients_key_goes_with_every_read_and_resume_and_a_calls_wins
      down = -> { GRPC::Unavailable.new("down") }
      serve(down.call, V1::ReadResponse.new, V1::ReadResponse.new, # a read retried, a read with its own key
            [batch(0), down.call], [batch(1)], # a session, resumed
            [batch(0), down.call], [batch(1)], # a session with its own key, resumed
            tail(2),
            encryption_key: RAW_KEY)
      @client.read("orders")
      @client.read("orders", encryption_key: OTHER)
      assert_equal [0, 1], @client.read_session("orders", seq_num: 0, count: 2).flat_map { |b| b.records.map(&:seq_num) }
      assert_equal [0, 1], @client.read_session("orders", seq_num: 0, count: 2, encryption_key: OTHER)
                                  .flat_map { |b| b.records.map(&:seq_num) }
      @client.check_tail("orders")
      assert_equal [KEY, KEY, OTHER, KEY, KEY, OTHER, OTHER, nil], @service.keys
      assert_equal ["Bearer t0k"] * 8, @service.tokens # the key comes with the client's other metadata
      refute_includes @client.inspect, KEY
    end

    def test_a_key_grpc_cannot_carry_or_of_another_type_is_refused_without_showing_it
      secret = "#{KEY[0, 40]}é"
      err = assert_raises(ArgumentError) { Client.new("127.0.0.1:1", encryption_key: secret) }
      refute_includes err.message, KEY[0, 40]
      assert_raises(TypeError) { Client.new("127.0.0.1:1", encryption_key: 42) }
      serve
      assert_raises(ArgumentError) { @client.read("orders", encryption_key: secret) }
      assert_raises(ArgumentError) { @client.read_session("orders", encryption_key: secret) }
      assert_empty @service.requests
      assert_equal "#<S2Sidecar::EncryptionKey [redacted]>", EncryptionKey.from(KEY).inspect
    end
  end
end
