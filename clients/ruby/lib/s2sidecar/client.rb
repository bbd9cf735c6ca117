# frozen_string_literal: true

require "json"
require "logger"
require "timeout"
require_relative "encryption_key"
require_relative "errors"
require_relative "retry"
require_relative "proto/s2sidecar/v1/stream_services_pb"

module S2Sidecar
  # Raised by Client#wait_for_ready when the sidecar is not ready in time (a Timeout::Error).
  class NotReady < Timeout::Error; end

  # A client for one sidecar. Calls return the generated messages (S2Sidecar::V1::ReadResponse,
  # ReadSessionResponse, StreamPosition): records have seq_num, timestamp (ms), headers (name,
  # value) and body, byte strings as binary (ASCII-8BIT) Strings.
  #
  #   client = S2Sidecar::Client.new(basin: "my-basin")
  #   client.read("orders", seq_num: 0, count: 100).records.each { |r| puts r.body } # no start: the tail
  #   client.read_session("orders", tail_offset: 10) { |batch| ... }
  #   client.check_tail("orders").seq_num
  #
  # Until the sidecar has answered once, calls wait for the connection (gRPC's wait-for-ready)
  # within their deadline instead of failing fast: an app that starts before its sidecar waits for
  # it. #wait_for_ready waits for it explicitly, at start.
  class Client
    DEFAULT_TARGET = "127.0.0.1:50051"
    # The default of a call's timeout: keyword, which nil (no deadline) cannot be.
    CLIENT_TIMEOUT = Object.new.freeze
    private_constant :CLIENT_TIMEOUT
    START_FIELDS = %i[seq_num timestamp tail_offset].freeze
    # Ruby's grpc (1.51) has no per-call wait_for_ready option; a method config in the channel's
    # default service config sets it for every call on that channel.
    WAIT_FOR_READY_CONFIG = {
      methodConfig: [{ name: [{ service: "s2sidecar.v1.StreamService" }], waitForReady: true }]
    }.to_json.freeze
    # Statuses that say nothing about the sidecar having answered: no connection, or the caller's
    # own deadline or cancellation.
    NOT_AN_ANSWER = [GRPC::Core::StatusCodes::UNAVAILABLE, GRPC::Core::StatusCodes::DEADLINE_EXCEEDED,
                     GRPC::Core::StatusCodes::CANCELLED].freeze

    attr_reader :basin, :timeout, :retry_policy, :target

    # target: "host:port" or "unix:/path/to.sock"; default $S2_SIDECAR_ADDRESS (the Helm chart sets
    # it in every app container), else 127.0.0.1:50051. basin: sent with every call; nil uses the
    # sidecar's default basin. token: the sidecar's app token (S2_SIDECAR_APP_TOKEN), sent as
    # "authorization: Bearer <token>". timeout: seconds for read and check_tail, on top of any
    # `wait`; sessions have none. retry_policy: how calls ride out a sidecar restart
    # (RetryPolicy::NONE turns that off). logger: where resumes and retries are logged (info).
    # encryption_key: the key of encrypted streams (an EncryptionKey, or a String: binary for the 32
    # raw bytes, else their base64), sent with every read and read_session (and each resume); a
    # call's own encryption_key: wins. check_tail sends none. Never logged nor shown by #inspect.
    def initialize(target = ENV["S2_SIDECAR_ADDRESS"] || DEFAULT_TARGET, basin: nil, token: nil, timeout: 30,
                   retry_policy: RetryPolicy.new, logger: nil, encryption_key: nil)
      @basin = basin.to_s
      @encryption_key = encryption_key && EncryptionKey.from(encryption_key)
      @timeout = timeout
      @retry_policy = retry_policy
      @logger = logger || Logger.new(IO::NULL)
      @metadata = token ? { "authorization" => "Bearer #{token}" } : {}
      @target = target
      @channel = GRPC::Core::Channel.new(target, retry_policy.channel_args, :this_channel_is_insecure)
      @stub = V1::StreamService::Stub.new(target, :this_channel_is_insecure, channel_override: @channel)
      # Until the first answer calls go through a second channel whose calls wait for the
      # connection; after it, through @stub, whose calls fail fast (the retry policy's to ride out).
      # The waiting channel is left to go idle then, not closed under calls still on it.
      @waiting_channel = GRPC::Core::Channel.new(
        target, retry_policy.channel_args.merge("grpc.service_config" => WAIT_FOR_READY_CONFIG),
        :this_channel_is_insecure
      )
      @waiting_stub = V1::StreamService::Stub.new(target, :this_channel_is_insecure,
                                                   channel_override: @waiting_channel)
      @answered = false
    end

    # Opens a client, yields it and closes it.
    def self.open(*args, **kwargs)
      client = new(*args, **kwargs)
      return client unless block_given?

      begin
        yield client
      ensure
        client.close
      end
    end

    def close
      @channel.close
      @waiting_channel.close
    end

    # Waits until the connection to the sidecar is up (READY), connecting if it is idle: use it at
    # start, before the first call, for a sidecar that starts with the app. Raises NotReady (a
    # Timeout::Error) naming the target after `timeout` seconds (nil: no limit). Returns self.
    def wait_for_ready(timeout: nil)
      deadline = timeout && (Time.now + timeout)
      @waiting_channel.connectivity_state(true) # the first calls' channel connects meanwhile
      state = @channel.connectivity_state(true)
      until state == GRPC::Core::ConnectivityStates::READY
        if state == GRPC::Core::ConnectivityStates::FATAL_FAILURE || (deadline && Time.now >= deadline)
          raise NotReady, "s2-sidecar at #{@target} is not ready after #{timeout} s " \
                          "(connection #{state_name(state)})"
        end
        # Wakes on a change or after a second at most (grpc backs off up to the policy's max meanwhile).
        @channel.watch_connectivity_state(state, [deadline || (Time.now + 1), Time.now + 1].min)
        state = @channel.connectivity_state(true)
      end
      self
    end

    # One batch (at most 1000 records / 1 MiB metered) as a V1::ReadResponse. Start with one of
    # seq_num:, timestamp: (ms) or tail_offset:; none means the tail, as the proto says (a read
    # there without wait: is RangeNotSatisfiable); stop with count:, bytes: or until:
    # (an exclusive timestamp); clamp: starts at the tail instead of failing past it; wait:
    # (seconds, at most 60) long-polls at the tail. encryption_key: this call's key, instead of the
    # client's. ignore_command_records: true leaves command records (fence, trim) out; they still
    # count toward count: and bytes:, as in S2's SDKs. timeout: this call's timeout in seconds,
    # instead of the client's, with the same meaning: the wait: comes on top (nil: none).
    def read(stream, encryption_key: nil, timeout: CLIENT_TIMEOUT, **opts)
      metadata = reads_metadata(encryption_key)
      opts = opts.compact
      req = request(V1::ReadRequest, stream, **opts)
      timeout = @timeout if timeout.equal?(CLIENT_TIMEOUT)
      within = timeout && (timeout + (opts[:wait] || 0))
      retrying(within) do |deadline|
        stub.read(req, metadata: metadata, deadline: deadline)
      end
    rescue RangeNotSatisfiable => e
      raise e unless req && req.start.nil? && opts[:wait].nil?

      # The same error (class, tail, trailers), its message saying how to read what is there.
      raise e.exception("#{e.message} (read with no start reads at the tail, as the proto says: pass a " \
                        "start, e.g. seq_num: 0 to read from the first record, or set wait:)")
    end

    # The stream's tail as a V1::StreamPosition: the seq_num the next record will get and the last
    # record's timestamp. max_staleness_ms: how old a cached tail may be (0: ask S2 unless a live
    # session vouches for it; nil: the sidecar's default, 1 s). timeout: this call's deadline in
    # seconds (nil: none; default: the client's).
    def check_tail(stream, max_staleness_ms: nil, timeout: CLIENT_TIMEOUT)
      req = V1::CheckTailRequest.new(basin: @basin, stream: stream, max_staleness_ms: max_staleness_ms)
      retrying(timeout.equal?(CLIENT_TIMEOUT) ? @timeout : timeout) { |deadline| stub.check_tail(req, metadata: @metadata, deadline: deadline) }.tail
    end

    # Batches (V1::ReadSessionResponse) from a start (default: the tail), in order, each record
    # exactly once; same options as #read. With no stop (count:, bytes:, until:) the session
    # follows the stream for ever; with one it ends there, or at the tail unless wait: (seconds
    # without a record) says how long to wait. Heartbeats (no records, tail set: caught up and
    # healthy) are skipped unless heartbeats: true.
    #
    # With a block, yields each batch (break out to end the session); without, returns a Session,
    # an Enumerable whose each opens the call.
    #
    # If the sidecar restarts, the session resumes after the last record it delivered;
    # resume: false raises the first failure instead. A failure it does not retry raises an Error
    # whose next_seq_num is where to resume. encryption_key: this session's key, instead of the
    # client's; every resume sends it.
    #
    # ignore_command_records: true leaves command records (fence, trim) out, every resume included;
    # with count: or bytes: it raises ArgumentError (the records left out count toward the limit
    # but are never delivered, so a resume could not reduce it exactly). Session#caught_up? (and
    # each batch's caught_up) says whether the backlog is done.
    def read_session(stream, heartbeats: false, resume: true, encryption_key: nil, **opts, &block)
      if opts[:ignore_command_records] && (opts[:count].to_i.positive? || opts[:bytes].to_i.positive?)
        raise ArgumentError, "read_session: ignore_command_records with a count or bytes limit cannot resume " \
                             "exactly (the records left out count toward the limit but are never delivered): " \
                             "leave the limit to the app (break out), or drop ignore_command_records"
      end
      metadata = reads_metadata(encryption_key)
      state = Retry::SessionState.new(request(V1::ReadSessionRequest, stream, **opts),
                                      resume ? @retry_policy : RetryPolicy::NONE)
      session = Session.new(state, heartbeats: heartbeats, logger: @logger, on_answer: method(:answered)) do |req|
        stub.read_session(req, metadata: metadata, return_op: true)
      end
      block ? session.each(&block) : session
    end

    private

    # The metadata of a read or session: the call's key, else the client's (CheckTail sends none).
    def reads_metadata(encryption_key)
      key = encryption_key ? EncryptionKey.from(encryption_key) : @encryption_key
      key ? key.metadata(@metadata) : @metadata
    end

    # Notes that the sidecar answered: a response (err nil), or a status it sent.
    def answered(err = nil)
      @answered = true unless err && NOT_AN_ANSWER.include?(err.code)
    end

    # The stub for the next call: one that waits for the connection until the sidecar first answers.
    def stub = @answered ? @stub : @waiting_stub

    def state_name(state)
      states = GRPC::Core::ConnectivityStates
      states.constants.find { |c| states.const_get(c) == state } || state
    end

    def request(klass, stream, **opts)
      opts = opts.compact # nil means unset, as for the proto's optional fields
      starts = opts.keys & START_FIELDS
      raise ArgumentError, "give at most one start, not #{starts.join(' and ')}" if starts.size > 1

      klass.new(basin: @basin, stream: stream, **opts)
    end

    # Yields the call's deadline (a Time, or nil for none) until the call succeeds, fails for good,
    # or `within` seconds leave no room for another attempt.
    def retrying(within)
      deadline = within && (Time.now + within)
      attempts = Retry::Attempts.new(@retry_policy)
      loop do
        return yield(deadline).tap { answered }
      rescue GRPC::BadStatus => e
        err = Error.from_grpc(e)
        answered(err)
        delay = attempts.retry_delay(err, deadline && (deadline - Time.now))
        raise err unless delay

        @logger.info("retrying in #{delay.round(2)}s: #{err.message}")
        sleep delay
      end
    end
  end

  # An auto-resuming ReadSession: Enumerable over its batches. Each #each opens a call from where
  # the session stands, so a second #each (after `first`, say) carries on after the first one.
  class Session
    include Enumerable

    def initialize(state, heartbeats:, logger:, on_answer: ->(_err = nil) {}, &open)
      @on_answer = on_answer
      @state = state
      @heartbeats = heartbeats
      @logger = logger
      @open = open
    end

    # Where the session stands: after the last record delivered, or at the last heartbeat's tail.
    def next_seq_num = @state.next_seq_num

    # Whether the last message (a hidden heartbeat included) said every record before the tail was
    # delivered, as S2's SDKs' is_caught_up(): false at the start, and after a resume until a
    # message says so.
    def caught_up? = @state.caught_up

    def each
      return enum_for(:each) unless block_given?

      while (req = @state.request)
        call = @open.call(req)
        in_block = false
        begin
          call.execute.each do |msg|
            @on_answer.call
            @state.on_message(msg)
            next unless msg.records.any? || @heartbeats

            in_block = true
            yield msg
            in_block = false
          end
          @on_answer.call
          return self # the session ended by itself
        rescue GRPC::BadStatus => e
          raise if in_block # the caller's own gRPC failure, not this session's

          err = Error.from_grpc(e)
          if err.is_a?(Cancelled)
            # Not the caller's (it cancels only by leaving its block, above): gRPC for Ruby
            # reports some connections the sidecar dropped while restarting as CANCELLED.
            err = Unavailable.new(GRPC::Core::StatusCodes::UNAVAILABLE, "the call was cut (#{err.message})")
          end
          @on_answer.call(err)
          delay = @state.on_error(err)
          raise err unless delay

          @logger.info("session resumes at #{@state.next_seq_num.inspect} in #{delay.round(2)}s: #{err.message}")
          sleep delay
        ensure
          call.cancel # a no-op once the call ended; ends it when the caller breaks out
        end
      end
      self
    end
  end
end
