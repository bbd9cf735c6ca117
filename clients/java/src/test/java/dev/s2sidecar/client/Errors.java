package dev.s2sidecar.client;

import com.google.protobuf.Any;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.Map;

/** Failed-call statuses as the sidecar sends them, for the tests. */
final class Errors {
  private Errors() {}

  static StatusRuntimeException status(Status.Code code, String message, Map<String, String> trailers, Any... details) {
    Metadata md = new Metadata();
    trailers.forEach((k, v) -> md.put(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER), v));
    com.google.rpc.Status.Builder rich = com.google.rpc.Status.newBuilder().setCode(code.value()).setMessage(message);
    for (Any d : details) {
      rich.addDetails(d);
    }
    return StatusProto.toStatusRuntimeException(rich.build(), md);
  }

  static StatusRuntimeException status(Status.Code code, String message) {
    return status(code, message, Map.of());
  }

  static SidecarException error(Status.Code code, String message, Any... details) {
    return SidecarException.from(status(code, message, Map.of(), details));
  }

  static Any errorInfo(String reason) {
    return Any.pack(ErrorInfo.newBuilder().setReason(reason).setDomain("s2.dev").build());
  }

  static Any retried(int attempts) {
    return Any.pack(ErrorInfo.newBuilder().setReason("upstream_unreachable").setDomain("s2.dev")
        .putMetadata("attempts", String.valueOf(attempts)).build());
  }

  static Any retryInfo(long millis) {
    var delay = com.google.protobuf.Duration.newBuilder()
        .setSeconds(millis / 1000)
        .setNanos((int) (millis % 1000) * 1_000_000);
    return Any.pack(RetryInfo.newBuilder().setRetryDelay(delay).build());
  }

  static Any badRequest(String field) {
    return Any.pack(BadRequest.newBuilder()
        .addFieldViolations(BadRequest.FieldViolation.newBuilder().setField(field).setDescription("bad"))
        .build());
  }
}
