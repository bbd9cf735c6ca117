# frozen_string_literal: true

require "google/protobuf/well_known_types" # Any#unpack
require "grpc"

# google.rpc.Status and its details, under their canonical feature names: if the app already has
# them (googleapis-common-protos-types earlier on the load path) that copy is used, and either way
# they are loaded once (two copies of a .proto in one descriptor pool is an error).
$LOAD_PATH << File.expand_path("proto", __dir__)
require "google/rpc/status_pb"
require "google/rpc/error_details_pb"
require_relative "proto/s2sidecar/v1/stream_pb"

module S2Sidecar
  # Any failed call, built from the gRPC status, the google.rpc.Status in grpc-status-details-bin
  # (ErrorInfo, RetryInfo, BadRequest) and the sidecar's trailing metadata.
  #
  #   Error                    any failed call
  #   ├── InvalidArgument      #field names the request field to change
  #   ├── NotFound
  #   │   ├── StreamNotFound   reason "stream_not_found"
  #   │   └── BasinNotFound    reason "basin_not_found"
  #   ├── RangeNotSatisfiable  OUT_OF_RANGE: start past the tail; #tail
  #   ├── Unavailable          sidecar restarting or unreachable (retried unless turned off)
  #   ├── Unauthenticated, PermissionDenied, ResourceExhausted
  #   ├── Conflict             ABORTED / FAILED_PRECONDITION
  #   └── DeadlineExceeded, Cancelled
  class Error < StandardError
    STATUS_DETAILS_KEY = "grpc-status-details-bin"
    CODE_NAMES = GRPC::Core::StatusCodes.constants.to_h { |c| [GRPC::Core::StatusCodes.const_get(c), c.to_s] }.freeze

    # code: the gRPC status code (Integer); reason: S2's error code (ErrorInfo.reason, e.g.
    # "stream_not_found"); metadata: ErrorInfo.metadata; retry_after: RetryInfo's delay in seconds
    # (nil: do not retry as is); field_violations: BadRequest's [field, description] pairs;
    # trailers: the text trailing metadata.
    attr_reader :code, :reason, :metadata, :retry_after, :field_violations, :trailers
    # For a session that failed: the seq_num to resume at. The session's own position when it
    # delivered anything (or saw a heartbeat), else the sidecar's s2-next-seq-num trailer.
    attr_writer :next_seq_num

    def initialize(code, message, reason: nil, metadata: {}, retry_after: nil, field_violations: [], trailers: {})
      super(message)
      @code = code
      @reason = reason
      @metadata = metadata
      @retry_after = retry_after
      @field_violations = field_violations
      @trailers = trailers
      @next_seq_num = nil
    end

    # "NOT_FOUND"
    def code_name = CODE_NAMES.fetch(code, code.to_s)

    def next_seq_num
      return @next_seq_num if @next_seq_num

      raw = trailers["s2-next-seq-num"] || metadata["next_seq_num"]
      raw && Integer(raw)
    end

    # The typed error for a GRPC::BadStatus.
    def self.from_grpc(err)
      trailers = err.metadata.reject { |k, v| k == STATUS_DETAILS_KEY || !v.is_a?(String) }
      info = { trailers: trailers }
      message = err.details
      if (raw = err.metadata[STATUS_DETAILS_KEY])
        status = Google::Rpc::Status.decode(raw)
        message = status.message unless status.message.empty?
        status.details.each { |any| info.merge!(detail(any)) }
      end
      klass = BY_CODE.fetch(err.code, Error)
      klass = BY_REASON.fetch(info[:reason], NotFound) if klass == NotFound
      klass.new(err.code, message, **info)
    end

    def self.detail(any)
      if (i = any.unpack(Google::Rpc::ErrorInfo))
        { reason: i.reason, metadata: i.metadata.to_h }
      elsif (r = any.unpack(Google::Rpc::RetryInfo))
        { retry_after: r.retry_delay ? r.retry_delay.seconds + (r.retry_delay.nanos / 1e9) : 0.0 }
      elsif (b = any.unpack(Google::Rpc::BadRequest))
        { field_violations: b.field_violations.map { |v| [v.field, v.description] } }
      else
        {}
      end
    end
    private_class_method :detail
  end

  class InvalidArgument < Error
    # The request field to change, e.g. "stream" or "wait".
    def field = field_violations.first&.first
  end

  class NotFound < Error; end
  class StreamNotFound < NotFound; end
  class BasinNotFound < NotFound; end

  class RangeNotSatisfiable < Error
    # The stream's tail (S2Sidecar::V1::StreamPosition): start at or before tail.seq_num, or pass clamp: true.
    def tail
      seq = trailers["s2-tail-seq-num"] || metadata["tail_seq_num"] || 0
      ts = trailers["s2-tail-timestamp"] || metadata["tail_timestamp"] || 0
      V1::StreamPosition.new(seq_num: Integer(seq), timestamp: Integer(ts))
    end
  end

  class Unavailable < Error; end
  class Unauthenticated < Error; end
  class PermissionDenied < Error; end
  class ResourceExhausted < Error; end
  class Conflict < Error; end
  class DeadlineExceeded < Error; end
  class Cancelled < Error; end

  codes = GRPC::Core::StatusCodes
  Error::BY_CODE = {
    codes::INVALID_ARGUMENT => InvalidArgument,
    codes::NOT_FOUND => NotFound,
    codes::OUT_OF_RANGE => RangeNotSatisfiable,
    codes::UNAVAILABLE => Unavailable,
    codes::UNAUTHENTICATED => Unauthenticated,
    codes::PERMISSION_DENIED => PermissionDenied,
    codes::RESOURCE_EXHAUSTED => ResourceExhausted,
    codes::ABORTED => Conflict,
    codes::FAILED_PRECONDITION => Conflict,
    codes::DEADLINE_EXCEEDED => DeadlineExceeded,
    codes::CANCELLED => Cancelled
  }.freeze
  Error::BY_REASON = { "stream_not_found" => StreamNotFound, "basin_not_found" => BasinNotFound }.freeze
end
