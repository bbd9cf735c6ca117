package dev.s2sidecar.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * A failed call, built from its gRPC status, the {@code google.rpc.Status} details (ErrorInfo,
 * RetryInfo, BadRequest) and the sidecar's trailing metadata. Unchecked, like grpc-java's own
 * {@code StatusRuntimeException} (which is the {@link #getCause() cause}).
 *
 * <pre>
 * SidecarException              any failed call: code(), reason(), retryAfter(), nextSeqNum(), ...
 * ├── InvalidArgument           INVALID_ARGUMENT; field() names the request field to change
 * ├── NotFound                  NOT_FOUND
 * │   ├── StreamNotFound        reason stream_not_found
 * │   └── BasinNotFound         reason basin_not_found
 * ├── RangeNotSatisfiable       OUT_OF_RANGE: the start is past the tail(); or pass clamp
 * ├── Unavailable               UNAVAILABLE: the sidecar is restarting or S2 is unreachable
 * ├── Unauthenticated           UNAUTHENTICATED: a missing or wrong app token, or S2 refused
 * ├── PermissionDenied          PERMISSION_DENIED
 * ├── ResourceExhausted         RESOURCE_EXHAUSTED (rate limited, or a quota)
 * ├── Conflict                  ABORTED / FAILED_PRECONDITION
 * ├── DeadlineExceeded          DEADLINE_EXCEEDED (the client's timeout)
 * └── Cancelled                 CANCELLED
 * </pre>
 */
public class SidecarException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  static final String NEXT_SEQ_NUM = "s2-next-seq-num";
  static final String TAIL_SEQ_NUM = "s2-tail-seq-num";
  static final String TAIL_TIMESTAMP = "s2-tail-timestamp";

  /** What a status carries besides its code and message. */
  record Details(
      Optional<String> reason,
      Map<String, String> metadata,
      Optional<Duration> retryAfter,
      List<BadRequest.FieldViolation> fieldViolations,
      Map<String, String> trailers) {
    static final Details NONE = new Details(Optional.empty(), Map.of(), Optional.empty(), List.of(), Map.of());
  }

  private final Status.Code code;
  private final Details details;
  private OptionalLong resumeAt = OptionalLong.empty();

  SidecarException(Status.Code code, String message, Details details, Throwable cause) {
    super(message, cause);
    this.code = code;
    this.details = details;
  }

  /** The gRPC status code. */
  public Status.Code code() {
    return code;
  }

  /** S2's error code from the ErrorInfo detail, e.g. {@code "stream_not_found"}. */
  public Optional<String> reason() {
    return details.reason();
  }

  /** The ErrorInfo detail's metadata. */
  public Map<String, String> metadata() {
    return details.metadata();
  }

  /** The RetryInfo delay: the server says the call may succeed if retried after it. */
  public Optional<Duration> retryAfter() {
    return details.retryAfter();
  }

  /** The BadRequest detail's field violations (field, description). */
  public List<BadRequest.FieldViolation> fieldViolations() {
    return details.fieldViolations();
  }

  /** The trailing metadata's text entries. */
  public Map<String, String> trailers() {
    return details.trailers();
  }

  /**
   * Where a session that failed should resume ({@code ReadStart.seqNum(nextSeqNum)}): the
   * client's own position when a resuming session gave up, else the sidecar's {@code
   * s2-next-seq-num} (sent when it drains), else empty.
   */
  public OptionalLong nextSeqNum() {
    if (resumeAt.isPresent()) {
      return resumeAt;
    }
    String raw = details.trailers().getOrDefault(NEXT_SEQ_NUM, details.metadata().get("next_seq_num"));
    return raw == null ? OptionalLong.empty() : OptionalLong.of(Long.parseLong(raw));
  }

  void resumeAt(long seqNum) {
    resumeAt = OptionalLong.of(seqNum);
  }

  @Override
  public String toString() {
    return getClass().getSimpleName() + "(" + code + reason().map(r -> ", " + r).orElse("") + "): " + getMessage();
  }

  public static class InvalidArgument extends SidecarException {
    private static final long serialVersionUID = 1L;

    InvalidArgument(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }

    /** The request field to change (from BadRequest), e.g. {@code "stream"} or {@code "wait"}. */
    public Optional<String> field() {
      return fieldViolations().stream().findFirst().map(BadRequest.FieldViolation::getField);
    }
  }

  public static class NotFound extends SidecarException {
    private static final long serialVersionUID = 1L;

    NotFound(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }
  }

  public static final class StreamNotFound extends NotFound {
    private static final long serialVersionUID = 1L;

    StreamNotFound(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }
  }

  public static final class BasinNotFound extends NotFound {
    private static final long serialVersionUID = 1L;

    BasinNotFound(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }
  }

  public static final class RangeNotSatisfiable extends SidecarException {
    private static final long serialVersionUID = 1L;

    RangeNotSatisfiable(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }

    /** The same error (code, details, trailers) with another message. */
    RangeNotSatisfiable withMessage(String message) {
      RangeNotSatisfiable copy = new RangeNotSatisfiable(code(), message, ((SidecarException) this).details, getCause());
      copy.setStackTrace(getStackTrace());
      return copy;
    }

    /** The stream's tail: start at or before {@code tail().seqNum()}, or pass {@code clamp}. */
    public StreamPosition tail() {
      return new StreamPosition(number(TAIL_SEQ_NUM, "tail_seq_num"), number(TAIL_TIMESTAMP, "tail_timestamp"));
    }

    private long number(String trailer, String metadataKey) {
      String raw = trailers().getOrDefault(trailer, metadata().getOrDefault(metadataKey, "0"));
      return Long.parseLong(raw);
    }
  }

  public static final class Unavailable extends SidecarException {
    private static final long serialVersionUID = 1L;

    Unavailable(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }
  }

  public static final class Unauthenticated extends SidecarException {
    private static final long serialVersionUID = 1L;

    Unauthenticated(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }
  }

  public static final class PermissionDenied extends SidecarException {
    private static final long serialVersionUID = 1L;

    PermissionDenied(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }
  }

  public static final class ResourceExhausted extends SidecarException {
    private static final long serialVersionUID = 1L;

    ResourceExhausted(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }
  }

  public static final class Conflict extends SidecarException {
    private static final long serialVersionUID = 1L;

    Conflict(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }
  }

  public static final class DeadlineExceeded extends SidecarException {
    private static final long serialVersionUID = 1L;

    DeadlineExceeded(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }
  }

  public static final class Cancelled extends SidecarException {
    private static final long serialVersionUID = 1L;

    Cancelled(Status.Code code, String message, Details details, Throwable cause) {
      super(code, message, details, cause);
    }
  }

  @FunctionalInterface
  private interface Constructor {
    SidecarException make(Status.Code code, String message, Details details, Throwable cause);
  }

  /** The typed exception for a failed gRPC call ({@code StatusRuntimeException} or {@code StatusException}). */
  static SidecarException from(Throwable t) {
    if (t instanceof SidecarException e) {
      return e;
    }
    Status status = Status.fromThrowable(t);
    String message = status.getDescription() != null ? status.getDescription() : status.getCode().name();
    if (status.getCause() != null && status.getCause().getMessage() != null) {
      // grpc-java says "io exception" for a refused or reset connection: the cause says which
      message += ": " + status.getCause().getMessage();
    }
    Details details = details(t);
    Constructor make =
        switch (status.getCode()) {
          case INVALID_ARGUMENT -> InvalidArgument::new;
          case NOT_FOUND -> switch (details.reason().orElse("")) {
            case "stream_not_found" -> StreamNotFound::new;
            case "basin_not_found" -> BasinNotFound::new;
            default -> NotFound::new;
          };
          case OUT_OF_RANGE -> RangeNotSatisfiable::new;
          case UNAVAILABLE -> Unavailable::new;
          case UNAUTHENTICATED -> Unauthenticated::new;
          case PERMISSION_DENIED -> PermissionDenied::new;
          case RESOURCE_EXHAUSTED -> ResourceExhausted::new;
          case ABORTED, FAILED_PRECONDITION -> Conflict::new;
          case DEADLINE_EXCEEDED -> DeadlineExceeded::new;
          case CANCELLED -> Cancelled::new;
          default -> SidecarException::new;
        };
    return make.make(status.getCode(), message, details, t);
  }

  private static Details details(Throwable t) {
    Map<String, String> trailers = new LinkedHashMap<>();
    Metadata md = Status.trailersFromThrowable(t);
    if (md != null) {
      for (String key : md.keys()) {
        if (!key.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
          trailers.put(key, md.get(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER)));
        }
      }
    }
    Optional<String> reason = Optional.empty();
    Map<String, String> metadata = Map.of();
    Optional<Duration> retryAfter = Optional.empty();
    List<BadRequest.FieldViolation> violations = List.of();
    com.google.rpc.Status rich = StatusProto.fromThrowable(t);
    if (rich != null) {
      for (Any any : rich.getDetailsList()) {
        try {
          if (any.is(ErrorInfo.class)) {
            ErrorInfo info = any.unpack(ErrorInfo.class);
            reason = Optional.of(info.getReason());
            metadata = Map.copyOf(info.getMetadataMap());
          } else if (any.is(RetryInfo.class)) {
            var delay = any.unpack(RetryInfo.class).getRetryDelay();
            retryAfter = Optional.of(Duration.ofSeconds(delay.getSeconds(), delay.getNanos()));
          } else if (any.is(BadRequest.class)) {
            violations = List.copyOf(any.unpack(BadRequest.class).getFieldViolationsList());
          }
        } catch (InvalidProtocolBufferException e) {
          // a malformed detail: the code and message still say what failed
        }
      }
    }
    return new Details(reason, metadata, retryAfter, violations, Map.copyOf(trailers));
  }
}
