package dev.s2sidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.grpc.Status;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

class SidecarExceptionTest {
  @Test
  void notFoundIsTypedByItsReason() {
    var stream = Errors.error(Status.Code.NOT_FOUND, "stream not found", Errors.errorInfo("stream_not_found"));
    assertInstanceOf(SidecarException.StreamNotFound.class, stream);
    assertEquals(Optional.of("stream_not_found"), stream.reason());
    assertEquals("stream not found", stream.getMessage());
    assertInstanceOf(
        SidecarException.BasinNotFound.class, Errors.error(Status.Code.NOT_FOUND, "", Errors.errorInfo("basin_not_found")));
    assertSame(SidecarException.NotFound.class, Errors.error(Status.Code.NOT_FOUND, "?").getClass());
  }

  @Test
  void invalidArgumentNamesTheField() {
    var e = Errors.error(Status.Code.INVALID_ARGUMENT, "bad stream name", Errors.badRequest("stream"));
    assertEquals(Optional.of("stream"), assertInstanceOf(SidecarException.InvalidArgument.class, e).field());
  }

  @Test
  void outOfRangeCarriesTheTail() {
    var e = SidecarException.from(Errors.status(
        Status.Code.OUT_OF_RANGE, "past the tail", Map.of("s2-tail-seq-num", "3", "s2-tail-timestamp", "1700")));
    var range = assertInstanceOf(SidecarException.RangeNotSatisfiable.class, e);
    assertEquals(new StreamPosition(3, 1700), range.tail());
    assertEquals("3", range.trailers().get("s2-tail-seq-num"));
  }

  @Test
  void unavailableCarriesTheSidecarsNextSeqNumAndRetryInfo() {
    var e = SidecarException.from(Errors.status(
        Status.Code.UNAVAILABLE, "shutting down", Map.of("s2-next-seq-num", "12"), Errors.retryInfo(1500)));
    assertInstanceOf(SidecarException.Unavailable.class, e);
    assertEquals(OptionalLong.of(12), e.nextSeqNum());
    assertEquals(Optional.of(Duration.ofMillis(1500)), e.retryAfter());
  }

  @Test
  void everyCodeHasItsType() {
    assertInstanceOf(SidecarException.Unauthenticated.class, Errors.error(Status.Code.UNAUTHENTICATED, ""));
    assertInstanceOf(SidecarException.PermissionDenied.class, Errors.error(Status.Code.PERMISSION_DENIED, ""));
    assertInstanceOf(SidecarException.ResourceExhausted.class, Errors.error(Status.Code.RESOURCE_EXHAUSTED, ""));
    assertInstanceOf(SidecarException.Conflict.class, Errors.error(Status.Code.ABORTED, ""));
    assertInstanceOf(SidecarException.Conflict.class, Errors.error(Status.Code.FAILED_PRECONDITION, ""));
    assertInstanceOf(SidecarException.DeadlineExceeded.class, Errors.error(Status.Code.DEADLINE_EXCEEDED, ""));
    assertInstanceOf(SidecarException.Cancelled.class, Errors.error(Status.Code.CANCELLED, ""));
    var internal = SidecarException.from(Status.INTERNAL.withDescription("boom").asRuntimeException());
    assertSame(SidecarException.class, internal.getClass());
    assertEquals(Status.Code.INTERNAL, internal.code());
    assertEquals(Optional.empty(), internal.reason());
  }
}
