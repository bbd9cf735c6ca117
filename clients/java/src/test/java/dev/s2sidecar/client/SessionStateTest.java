package dev.s2sidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.s2sidecar.v1.ReadSessionRequest;
import io.grpc.Status;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;

class SessionStateTest {
  private static final RetryPolicy POLICY = new RetryPolicy(3, Duration.ofMillis(100), Duration.ofSeconds(1));

  private static ReadBatch records(long from, long to, int bodyBytes) {
    return new ReadBatch(
        LongStream.range(from, to).mapToObj(s -> new SequencedRecord(s, 1000 + s, List.of(), new byte[bodyBytes])).toList(),
        Optional.empty());
  }

  private static ReadBatch heartbeat(long tail) {
    return new ReadBatch(List.of(), Optional.of(new StreamPosition(tail, 42)));
  }

  private static SessionState state(ReadSessionRequest.Builder request) {
    return new SessionState(request.setStream("s").build(), POLICY, () -> 0.0);
  }

  @Test
  void nothingDeliveredRetriesTheOriginalRequest() {
    ReadSessionRequest original = ReadSessionRequest.newBuilder().setStream("s").setTailOffset(10).setCount(5).build();
    SessionState state = new SessionState(original, POLICY, () -> 0.0);
    assertEquals(Optional.of(original), state.request());
    state.onBatch(new ReadBatch(List.of(), Optional.empty())); // neither records nor a tail: no position
    assertEquals(Optional.of(original), state.request());
  }

  @Test
  void aRetryStartsAfterTheLastRecordWithTheLimitsReduced() {
    SessionState state = state(ReadSessionRequest.newBuilder().setTimestamp(5).setCount(10).setBytes(1000).setUntil(99).setWait(7));
    state.onBatch(records(3, 6, 12)); // 3 records of 8 + 12 metered bytes
    ReadSessionRequest next = state.request().orElseThrow();
    assertEquals(ReadSessionRequest.StartCase.SEQ_NUM, next.getStartCase()); // the timestamp start is replaced
    assertEquals(6, next.getSeqNum());
    assertEquals(7, next.getCount());
    assertEquals(1000 - 60, next.getBytes());
    assertEquals(99, next.getUntil());
    assertEquals(7, next.getWait());
    assertEquals(OptionalLong.of(6), state.nextSeqNum());
  }

  @Test
  void meteredBytesCountHeaders() {
    var record = new SequencedRecord(0, 0, List.of(new Header("ab".getBytes(), "xyz".getBytes())), new byte[4]);
    assertEquals(8 + 2 + 2 + 3 + 4, record.meteredBytes());
  }

  @Test
  void aHeartbeatMovesAFollowerThatHasSeenNoRecordToTheTail() {
    SessionState state = state(ReadSessionRequest.newBuilder().setTailOffset(0));
    state.onBatch(heartbeat(17));
    assertEquals(17, state.request().orElseThrow().getSeqNum());
    state.onBatch(records(17, 19, 1));
    state.onBatch(heartbeat(19));
    assertEquals(19, state.request().orElseThrow().getSeqNum());
  }

  @Test
  void aSessionWhoseLimitIsReachedHasNoNextRequest() {
    SessionState byCount = state(ReadSessionRequest.newBuilder().setSeqNum(0).setCount(4));
    byCount.onBatch(records(0, 4, 1));
    assertFalse(byCount.request().isPresent());

    SessionState byBytes = state(ReadSessionRequest.newBuilder().setSeqNum(0).setBytes(30));
    byBytes.onBatch(records(0, 3, 2)); // 3 * 10 metered bytes
    assertFalse(byBytes.request().isPresent());

    SessionState unlimited = state(ReadSessionRequest.newBuilder().setSeqNum(0));
    unlimited.onBatch(records(0, 1000, 1));
    ReadSessionRequest next = unlimited.request().orElseThrow();
    assertFalse(next.hasCount() || next.hasBytes());
  }

  @Test
  void progressResetsTheBudget() {
    SessionState state = state(ReadSessionRequest.newBuilder().setSeqNum(0));
    SidecarException down = Errors.error(Status.Code.UNAVAILABLE, "down");
    assertTrue(state.onError(down).isPresent());
    assertTrue(state.onError(down).isPresent());
    state.onBatch(heartbeat(0));
    assertTrue(state.onError(down).isPresent());
    assertTrue(state.onError(down).isPresent());
    assertFalse(state.onError(down).isPresent()); // three failures in a row
  }

  @Test
  void theErrorSaysWhereToResumeAndTheClientsPositionWinsOverTheSidecars() {
    SessionState state = state(ReadSessionRequest.newBuilder().setSeqNum(0));
    var drained = SidecarException.from(Errors.status(Status.Code.UNAVAILABLE, "draining", Map.of("s2-next-seq-num", "3")));
    assertEquals(OptionalLong.of(3), drained.nextSeqNum()); // the sidecar's word while the client has none
    state.onBatch(records(0, 5, 1));
    state.onError(drained);
    assertEquals(OptionalLong.of(5), drained.nextSeqNum());
    var notFound = Errors.error(Status.Code.NOT_FOUND, "gone");
    assertFalse(state.onError(notFound).isPresent());
    assertEquals(OptionalLong.of(5), notFound.nextSeqNum());
  }
}
