package dev.s2sidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.s2sidecar.v1.CheckTailRequest;
import dev.s2sidecar.v1.CheckTailResponse;
import dev.s2sidecar.v1.ReadRequest;
import dev.s2sidecar.v1.ReadResponse;
import dev.s2sidecar.v1.ReadSessionRequest;
import dev.s2sidecar.v1.ReadSessionResponse;
import dev.s2sidecar.v1.StreamServiceGrpc;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The client against an in-process StreamService that plays a script: each call takes the next
 * step, which answers it (records, heartbeats, a failure). The script records every request.
 */
class ScriptedServiceTest {
  private static final RetryPolicy FAST = new RetryPolicy(5, Duration.ofMillis(1), Duration.ofMillis(2));

  private final ConcurrentLinkedQueue<BiConsumer<Object, StreamObserver<Object>>> script = new ConcurrentLinkedQueue<>();
  private final List<Object> requests = new ArrayList<>();
  private final List<String> authorizations = new ArrayList<>();
  private final List<String> keys = new ArrayList<>(); // each call's s2-encryption-key (null: none)
  private final List<Deadline> deadlines = new ArrayList<>(); // each call's, as the server saw it
  private Server server;
  private ManagedChannel channel;

  @SuppressWarnings({"unchecked", "rawtypes"})
  private final class Scripted extends StreamServiceGrpc.StreamServiceImplBase {
    private void play(Object request, StreamObserver observer) {
      synchronized (requests) {
        requests.add(request);
        deadlines.add(Context.current().getDeadline());
      }
      var step = script.poll();
      if (step == null) {
        observer.onError(Status.INTERNAL.withDescription("the script has no more steps").asRuntimeException());
      } else {
        step.accept(request, observer);
      }
    }

    @Override
    public void read(ReadRequest request, StreamObserver<ReadResponse> observer) {
      play(request, observer);
    }

    @Override
    public void readSession(ReadSessionRequest request, StreamObserver<ReadSessionResponse> observer) {
      play(request, observer);
    }

    @Override
    public void checkTail(CheckTailRequest request, StreamObserver<CheckTailResponse> observer) {
      play(request, observer);
    }
  }

  @BeforeEach
  void start() throws IOException {
    String name = InProcessServerBuilder.generateName();
    ServerInterceptor auth = new ServerInterceptor() {
      @Override
      public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
        synchronized (authorizations) {
          authorizations.add(headers.get(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER)));
          keys.add(headers.get(EncryptionKey.HEADER));
        }
        return next.startCall(call, headers);
      }
    };
    server = InProcessServerBuilder.forName(name)
        .directExecutor()
        .addService(ServerInterceptors.intercept(new Scripted(), auth))
        .build()
        .start();
    channel = InProcessChannelBuilder.forName(name).directExecutor().build();
  }

  @AfterEach
  void stop() {
    channel.shutdownNow();
    server.shutdownNow();
  }

  private S2SidecarClient client(boolean resume) {
    return S2SidecarClient.builder().channel(channel).basin("b").token("t0k").retryPolicy(FAST).resume(resume).build();
  }

  private static ReadSessionResponse records(long from, long to) {
    var b = ReadSessionResponse.newBuilder();
    for (long s = from; s < to; s++) {
      b.addRecords(dev.s2sidecar.v1.SequencedRecord.newBuilder()
          .setSeqNum(s)
          .setTimestamp(1000 + s)
          .setBody(ByteString.copyFromUtf8("r" + s)));
    }
    return b.build();
  }

  private static ReadSessionResponse heartbeat(long tail) {
    return ReadSessionResponse.newBuilder()
        .setTail(dev.s2sidecar.v1.StreamPosition.newBuilder().setSeqNum(tail).setTimestamp(9))
        .build();
  }

  private void step(Object... answers) {
    script.add((request, observer) -> {
      for (Object answer : answers) {
        if (answer instanceof Throwable t) {
          observer.onError(t);
          return;
        }
        observer.onNext(answer);
      }
      observer.onCompleted();
    });
  }

  private static List<Long> drain(ReadSession session) {
    List<Long> seen = new ArrayList<>();
    session.forEachRemaining(b -> b.records().forEach(r -> seen.add(r.seqNum())));
    return seen;
  }

  private List<ReadSessionRequest> sessionRequests() {
    return requests.stream().map(ReadSessionRequest.class::cast).toList();
  }

  @Test
  void aSessionResumesAfterTheLastRecordWithTheCountReduced() {
    var drained = Errors.status(Status.Code.UNAVAILABLE, "draining", Map.of("s2-next-seq-num", "2"));
    step(records(0, 2), drained);
    step(Errors.status(Status.Code.UNAVAILABLE, "connection refused"));
    step(records(2, 5));
    try (var client = client(true);
        var session = client.readSession("s", ReadOptions.from(ReadStart.tailOffset(9)).limit(ReadLimit.count(5)))) {
      assertEquals(List.of(0L, 1L, 2L, 3L, 4L), drain(session));
    }
    var sent = sessionRequests();
    assertEquals(3, sent.size());
    assertEquals(ReadSessionRequest.StartCase.TAIL_OFFSET, sent.get(0).getStartCase());
    assertEquals(5, sent.get(0).getCount());
    for (var retry : sent.subList(1, 3)) {
      assertEquals(2, retry.getSeqNum());
      assertEquals(3, retry.getCount());
      assertEquals("b", retry.getBasin());
    }
    assertEquals(List.of("Bearer t0k", "Bearer t0k", "Bearer t0k"), authorizations);
  }

  private static ReadSessionResponse caughtUp(ReadSessionResponse message) {
    return message.toBuilder().setCaughtUp(true).build();
  }

  @Test
  void caughtUpIsWhatTheLastMessageSaidAndFalseAfterAResume() {
    step(records(0, 1), caughtUp(records(1, 2)), Errors.status(Status.Code.UNAVAILABLE, "down"));
    step(records(2, 3), caughtUp(heartbeat(3)));
    List<Boolean> seen = new ArrayList<>();
    try (var client = client(true); var session = client.readSession("s", ReadOptions.from(ReadStart.seqNum(0)))) {
      assertFalse(session.caughtUp());
      while (session.hasNext()) {
        var batch = session.next();
        assertEquals(batch.caughtUp(), session.caughtUp());
        seen.add(session.caughtUp());
      }
    }
    // 0, 1 (caught up), the resume: 2 (behind again), the heartbeat at 3
    assertEquals(List.of(false, true, false, true), seen);
  }

  @Test
  void ignoreCommandRecordsIsSentWithEveryResumeAndReadRetry() {
    step(records(0, 1), Errors.status(Status.Code.UNAVAILABLE, "down"));
    step(records(2, 3));
    step(Errors.status(Status.Code.UNAVAILABLE, "down"));
    step(ReadResponse.getDefaultInstance());
    try (var client = client(true)) {
      var options = ReadOptions.from(ReadStart.seqNum(0)).ignoreCommandRecords(true);
      try (var session = client.readSession("s", options)) {
        assertEquals(List.of(0L, 2L), drain(session));
      }
      client.read("s", options.limit(ReadLimit.count(2)));
    }
    var sessions = requests.subList(0, 2).stream().map(ReadSessionRequest.class::cast).toList();
    assertEquals(List.of(0L, 1L), sessions.stream().map(ReadSessionRequest::getSeqNum).toList());
    assertTrue(sessions.stream().allMatch(ReadSessionRequest::getIgnoreCommandRecords));
    var reads = requests.subList(2, 4).stream().map(ReadRequest.class::cast).toList();
    assertEquals(reads.get(0), reads.get(1));
    assertTrue(reads.get(0).getIgnoreCommandRecords());
    assertEquals(2, reads.get(0).getCount());
  }

  @Test
  void ignoreCommandRecordsWithACountOrBytesLimitIsRefusedBeforeAnyCall() {
    try (var client = client(true)) {
      for (var limit : List.of(ReadLimit.count(3), ReadLimit.bytes(100))) {
        var options = ReadOptions.from(ReadStart.seqNum(0)).limit(limit).ignoreCommandRecords(true);
        var e = assertThrows(IllegalArgumentException.class, () -> client.readSession("s", options));
        assertTrue(e.getMessage().contains("leave the limit to the app"), e.getMessage());
      }
    }
    assertEquals(0, requests.size());
  }

  @Test
  void aFollowerResumesAtTheTailItsHeartbeatShowed() {
    step(heartbeat(7), Errors.status(Status.Code.INTERNAL, "RST_STREAM closed stream"));
    step(records(7, 9));
    try (var client = client(true); var session = client.readSession("s", ReadOptions.DEFAULT)) {
      assertEquals(7, session.next().tail().orElseThrow().seqNum());
      assertEquals(List.of(7L, 8L), drain(session));
    }
    assertEquals(7, sessionRequests().get(1).getSeqNum());
  }

  @Test
  void aSessionThatReachedItsCountEndsWithoutAnotherCall() {
    step(records(0, 3), Errors.status(Status.Code.UNAVAILABLE, "gone"));
    try (var client = client(true);
        var session = client.readSession("s", ReadOptions.from(ReadStart.seqNum(0)).limit(ReadLimit.count(3)))) {
      assertEquals(List.of(0L, 1L, 2L), drain(session));
    }
    assertEquals(1, requests.size());
  }

  @Test
  void notFoundIsThrownAtOnce() {
    step(Errors.status(Status.Code.NOT_FOUND, "no such stream", Map.of(), Errors.errorInfo("stream_not_found")));
    try (var client = client(true); var session = client.readSession("s", ReadOptions.DEFAULT)) {
      var e = assertThrows(SidecarException.StreamNotFound.class, session::hasNext);
      assertEquals("no such stream", e.getMessage());
      assertFalse(session.hasNext());
    }
    assertEquals(1, requests.size());
  }

  @Test
  void aSpentBudgetThrowsTheLastErrorWithWhereToResume() {
    step(records(0, 4), Errors.status(Status.Code.UNAVAILABLE, "down 1"));
    for (int i = 2; i <= 5; i++) {
      step(Errors.status(Status.Code.UNAVAILABLE, "down " + i));
    }
    try (var client = client(true); var session = client.readSession("s", ReadOptions.from(ReadStart.seqNum(0)))) {
      session.next();
      var e = assertThrows(SidecarException.Unavailable.class, session::hasNext);
      assertEquals("down 5", e.getMessage()); // FAST allows 5 attempts in a row without progress
      assertEquals(OptionalLong.of(4), e.nextSeqNum());
    }
    assertEquals(5, requests.size());
  }

  @Test
  void withResumeOffTheFirstFailureIsThrown() {
    step(records(0, 1), Errors.status(Status.Code.UNAVAILABLE, "draining", Map.of("s2-next-seq-num", "1")));
    try (var client = client(false); var session = client.readSession("s", ReadOptions.DEFAULT)) {
      session.next();
      var e = assertThrows(SidecarException.Unavailable.class, session::hasNext);
      assertEquals(OptionalLong.of(1), e.nextSeqNum());
    }
    step(Errors.status(Status.Code.UNAVAILABLE, "down"));
    try (var client = client(false)) {
      assertThrows(SidecarException.Unavailable.class, () -> client.checkTail("s"));
    }
    assertEquals(2, requests.size());
  }

  @Test
  void unaryCallsAreRetriedAndTyped() {
    step(Errors.status(Status.Code.UNAVAILABLE, "restarting"));
    step(ReadResponse.newBuilder().addAllRecords(records(0, 2).getRecordsList()).build());
    step(Errors.status(Status.Code.UNAVAILABLE, "restarting"));
    step(CheckTailResponse.newBuilder()
        .setTail(dev.s2sidecar.v1.StreamPosition.newBuilder().setSeqNum(2).setTimestamp(1001))
        .build());
    step(Errors.status(Status.Code.OUT_OF_RANGE, "past the tail", Map.of("s2-tail-seq-num", "2")));
    try (var client = client(true)) {
      ReadBatch batch = client.read("s", ReadOptions.from(ReadStart.seqNum(0)));
      assertEquals("r1", batch.records().get(1).bodyUtf8());
      assertEquals(new StreamPosition(2, 1001), client.checkTail("s", Duration.ZERO));
      var e = assertThrows(SidecarException.RangeNotSatisfiable.class, () -> client.read("s", ReadOptions.from(ReadStart.seqNum(5))));
      assertEquals(2, e.tail().seqNum());
    }
    assertEquals(5, requests.size());
    assertEquals(0, ((ReadRequest) requests.get(1)).getSeqNum());
    assertEquals(5, ((ReadRequest) requests.get(4)).getSeqNum());
    var checkTail = (CheckTailRequest) requests.get(3);
    assertEquals(0, checkTail.getMaxStalenessMs());
    assertTrue(checkTail.hasMaxStalenessMs());
  }

  @Test
  void closeEndsAFollowingSession() {
    script.add((request, observer) -> observer.onNext(records(0, 1))); // then never ends
    try (var client = client(true)) {
      var session = client.readSession("s", ReadOptions.DEFAULT);
      assertEquals(0, session.next().records().get(0).seqNum());
      session.close();
      assertFalse(session.hasNext());
    }
    assertEquals(1, requests.size());
  }

  @Test
  @Timeout(60) // a hang guard: without close() working, hasNext() would block for ever
  void closeFromAnotherThreadUnblocksHasNext() throws Exception {
    var started = new CountDownLatch(1);
    script.add((request, observer) -> started.countDown()); // answers nothing, ever
    try (var client = client(true)) {
      var session = client.readSession("s", ReadOptions.DEFAULT);
      var result = new CompletableFuture<Boolean>();
      var reader = new Thread(() -> result.complete(session.hasNext()));
      reader.start();
      started.await();
      session.close();
      assertFalse(result.get());
      reader.join();
    }
    assertEquals(1, requests.size());
  }

  @Test
  void theClientsKeyGoesWithEveryReadAndResumeAndACallsWins() {
    byte[] raw = new byte[32];
    java.util.Arrays.fill(raw, (byte) 7);
    String key = java.util.Base64.getEncoder().encodeToString(raw);
    String other = java.util.Base64.getEncoder().encodeToString(new byte[32]);
    var down = Errors.status(Status.Code.UNAVAILABLE, "down");
    step(down);
    step(ReadResponse.getDefaultInstance()); // a read, retried
    step(ReadResponse.getDefaultInstance()); // a read with its own key
    step(records(0, 1), down);
    step(records(1, 2)); // a session, resumed
    step(records(0, 1), down);
    step(records(1, 2)); // a session with its own key, resumed
    step(CheckTailResponse.newBuilder().setTail(dev.s2sidecar.v1.StreamPosition.getDefaultInstance()).build());
    var options = ReadOptions.from(ReadStart.seqNum(0)).limit(ReadLimit.count(2));
    try (var client = S2SidecarClient.builder().channel(channel).retryPolicy(FAST).encryptionKey(raw).build()) {
      client.read("s", ReadOptions.DEFAULT);
      client.read("s", ReadOptions.DEFAULT.encryptionKey(other));
      try (var session = client.readSession("s", options)) {
        assertEquals(List.of(0L, 1L), drain(session));
      }
      try (var session = client.readSession("s", options.encryptionKey(other))) {
        assertEquals(List.of(0L, 1L), drain(session));
      }
      client.checkTail("s");
    }
    assertEquals(java.util.Arrays.asList(key, key, other, key, key, other, other, null), keys);
    assertFalse(options.encryptionKey(other).toString().contains(other));
  }

  @Test
  void withNoOptionsEveryCallSendsTheStreamAlone() {
    step(ReadResponse.getDefaultInstance());
    step();
    step(CheckTailResponse.newBuilder().setTail(dev.s2sidecar.v1.StreamPosition.newBuilder().setSeqNum(3)).build());
    try (var client = S2SidecarClient.builder().channel(channel).build()) {
      client.read("s");
      try (var session = client.readSession("s")) {
        assertEquals(List.of(), drain(session));
      }
      client.checkTail("s");
    }
    assertEquals(
        List.of(
            ReadRequest.newBuilder().setStream("s").build(),
            ReadSessionRequest.newBuilder().setStream("s").build(),
            CheckTailRequest.newBuilder().setStream("s").build()),
        requests);
    assertTrue(ReadOptions.DEFAULT.start().isEmpty()); // the tail, as the proto says
    assertEquals(new RetryPolicy(60, Duration.ofMillis(100), Duration.ofSeconds(1)), RetryPolicy.DEFAULT);
  }

  @Test
  void aReadAtTheTailWithoutWaitSaysToPassAStart() {
    var atTail = Errors.status(Status.Code.OUT_OF_RANGE, "start is the tail; set wait", Map.of("s2-tail-seq-num", "4"));
    step(atTail);
    step(atTail);
    try (var client = client(true)) {
      var e = assertThrows(SidecarException.RangeNotSatisfiable.class, () -> client.read("s"));
      assertTrue(e.getMessage().contains("pass a start"), e.getMessage());
      assertEquals(4, e.tail().seqNum());
      var fromStart = assertThrows(
          SidecarException.RangeNotSatisfiable.class, () -> client.read("s", ReadOptions.from(ReadStart.seqNum(4))));
      assertFalse(fromStart.getMessage().contains("pass a start"), fromStart.getMessage());
    }
  }

  @Test
  void aCallsTimeoutReplacesTheClientsAndAReadsWaitComesOnTop() {
    var tail = CheckTailResponse.newBuilder().setTail(dev.s2sidecar.v1.StreamPosition.newBuilder().setSeqNum(3)).build();
    step(ReadResponse.getDefaultInstance());
    step(ReadResponse.getDefaultInstance());
    step(tail);
    step(tail);
    var fromZero = ReadOptions.from(ReadStart.seqNum(0)).waitSeconds(3);
    try (var client = S2SidecarClient.builder().channel(channel).timeout(Duration.ofSeconds(120)).build()) {
      client.read("s", fromZero);
      client.read("s", fromZero.timeout(Duration.ofSeconds(2)));
      client.checkTail("s");
      client.checkTail("s", CheckTailOptions.DEFAULT.maxStaleness(Duration.ZERO).timeout(Duration.ofSeconds(2)));
    }
    // What the server saw left of each deadline: at most the timeout (plus the wait), and not much
    // less (2 s of slack for a slow machine, less than any two of these are apart).
    List<Long> expected = List.of(123_000L, 5_000L, 120_000L, 2_000L);
    for (int i = 0; i < expected.size(); i++) {
      long left = deadlines.get(i).timeRemaining(TimeUnit.MILLISECONDS);
      assertTrue(left <= expected.get(i) && left > expected.get(i) - 2_000, "call " + i + ": " + left + " ms left");
    }
    assertEquals(0, ((CheckTailRequest) requests.get(3)).getMaxStalenessMs());
    assertTrue(((CheckTailRequest) requests.get(3)).hasMaxStalenessMs());
    assertFalse(((CheckTailRequest) requests.get(2)).hasMaxStalenessMs());
  }

  @Test
  void aSessionWithATimeoutIsRefusedBeforeAnyCall() {
    try (var client = client(true)) {
      var options = ReadOptions.from(ReadStart.seqNum(0)).timeout(Duration.ofSeconds(1));
      var e = assertThrows(IllegalArgumentException.class, () -> client.readSession("s", options));
      assertTrue(e.getMessage().contains("no deadline"), e.getMessage());
    }
    assertEquals(0, requests.size());
    // Options built with the seven components of before have no timeout of their own.
    var before = new ReadOptions(Optional.empty(), ReadLimit.NONE, OptionalLong.empty(), false, OptionalInt.empty(), Optional.empty(), false);
    assertTrue(before.timeout().isEmpty());
  }
}
