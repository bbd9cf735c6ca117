# frozen_string_literal: true

# An app that starts before its sidecar: until the sidecar first answers, calls
# wait for the connection instead of failing fast, and #wait_for_ready waits for it explicitly. A
# loopback server starts late on a fixed port; retries are off, so only the waiting can make a
# call succeed. Run: ruby -Ilib -rminitest/autorun test/wait_for_ready_test.rb

require "minitest/autorun"
require "socket"
require "s2sidecar"

module S2Sidecar
  class WaitForReadyTest < Minitest::Test
    # CheckTail: tail 7 ("missing": NOT_FOUND); ReadSession: records 0..2.
    class Fake < V1::StreamService::Service
      def check_tail(req, _call)
        raise GRPC::NotFound, "no such stream" if req.stream == "missing"

        V1::CheckTailResponse.new(tail: V1::StreamPosition.new(seq_num: 7))
      end

      def read_session(_req, _call)
        [V1::ReadSessionResponse.new(records: (0..2).map { |s| V1::SequencedRecord.new(seq_num: s) })].each
      end
    end

    def setup
      @servers = []
      @threads = []
      @port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
      @client = Client.new("127.0.0.1:#{@port}", timeout: 20, retry_policy: RetryPolicy::NONE)
    end

    def teardown
      @client.close
      @threads.each(&:join) # a late server is registered before its thread ends
      @servers.each(&:stop)
    end

    def serve
      server = GRPC::RpcServer.new(pool_size: 2)
      server.add_http2_port("127.0.0.1:#{@port}", :this_port_is_insecure)
      server.handle(Fake.new)
      Thread.new { server.run_till_terminated }
      server.wait_till_running
      @servers << server
      server
    end

    def serve_later(seconds)
      @threads << Thread.new do
        sleep seconds
        serve
      end
    end

    def test_the_first_call_waits_for_a_sidecar_that_starts_later
      serve_later(0.5)
      began = Time.now
      assert_equal 7, @client.check_tail("s").seq_num
      assert_operator Time.now - began, :>=, 0.4
      err = assert_raises(NotFound) { @client.check_tail("missing") } # an error is an answer too
      assert_equal GRPC::Core::StatusCodes::NOT_FOUND, err.code
    end

    def test_the_first_session_waits_for_a_sidecar_that_starts_later
      serve_later(0.5)
      batches = @client.read_session("s", seq_num: 0).to_a
      assert_equal [0, 1, 2], batches.flat_map(&:records).map(&:seq_num)
    end

    def test_after_the_first_answer_calls_fail_fast
      server = serve
      assert_equal 7, @client.check_tail("s").seq_num
      server.stop
      @servers.delete(server)
      began = Time.now
      assert_raises(Unavailable) { @client.check_tail("s") }
      assert_operator Time.now - began, :<, 5
    end

    def test_wait_for_ready_times_out_naming_the_target_then_waits_for_the_sidecar
      err = assert_raises(NotReady) { @client.wait_for_ready(timeout: 0.3) }
      assert_kind_of Timeout::Error, err
      assert_match(/\As2-sidecar at 127\.0\.0\.1:#{@port} is not ready after 0\.3 s/, err.message)
      serve_later(0.3)
      assert_same @client, @client.wait_for_ready(timeout: 20)
    end
  end
end
