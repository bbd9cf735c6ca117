package dev.s2sidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.s2sidecar.v1.CheckTailRequest;
import dev.s2sidecar.v1.CheckTailResponse;
import dev.s2sidecar.v1.ReadSessionRequest;
import dev.s2sidecar.v1.ReadSessionResponse;
import dev.s2sidecar.v1.StreamServiceGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * An app that starts before its sidecar: until the sidecar first answers, calls
 * wait for the connection instead of failing fast, and {@code waitForReady} waits for it
 * explicitly. A loopback server (the real transport) starts late on a fixed port; retries are off,
 * so only the waiting can make a call succeed.
 */
@Timeout(60)
class WaitForReadyTest {
  private final List<Server> servers = new CopyOnWriteArrayList<>();
  private final ScheduledExecutorService later = Executors.newSingleThreadScheduledExecutor();

  /** Answers CheckTail with tail 7 and ReadSession with records 0..2. */
  private static final class Fake extends StreamServiceGrpc.StreamServiceImplBase {
    @Override
    public void checkTail(CheckTailRequest request, StreamObserver<CheckTailResponse> observer) {
      if (request.getStream().equals("missing")) {
        observer.onError(Status.NOT_FOUND.withDescription("no such stream").asRuntimeException());
        return;
      }
      observer.onNext(CheckTailResponse.newBuilder()
          .setTail(dev.s2sidecar.v1.StreamPosition.newBuilder().setSeqNum(7))
          .build());
      observer.onCompleted();
    }

    @Override
    public void readSession(ReadSessionRequest request, StreamObserver<ReadSessionResponse> observer) {
      var b = ReadSessionResponse.newBuilder();
      for (long s = 0; s < 3; s++) {
        b.addRecords(dev.s2sidecar.v1.SequencedRecord.newBuilder().setSeqNum(s));
      }
      observer.onNext(b.build());
      observer.onCompleted();
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  private Server serve(int port) {
    try {
      Server server = Grpc.newServerBuilderForPort(port, InsecureServerCredentials.create())
          .addService(new Fake())
          .build()
          .start();
      servers.add(server);
      return server;
    } catch (IOException e) {
      throw new RuntimeException(e);
    }
  }

  private void serveLater(int port, long millis) {
    later.schedule(() -> serve(port), millis, TimeUnit.MILLISECONDS);
  }

  private static S2SidecarClient client(int port) {
    return S2SidecarClient.builder().target("127.0.0.1:" + port).resume(false).timeout(Duration.ofSeconds(20)).build();
  }

  @AfterEach
  void stop() {
    later.shutdownNow();
    servers.forEach(Server::shutdownNow);
  }

  @Test
  void theFirstCallWaitsForASidecarThatStartsLater() throws IOException {
    int port = freePort();
    try (S2SidecarClient client = client(port)) {
      serveLater(port, 500);
      long began = System.nanoTime();
      assertEquals(7, client.checkTail("s").seqNum());
      assertTrue(System.nanoTime() - began >= TimeUnit.MILLISECONDS.toNanos(400));
      // an answer that is an error counts too: NOT_FOUND comes from the sidecar
      SidecarException e = assertThrows(SidecarException.class, () -> client.checkTail("missing"));
      assertEquals(Status.Code.NOT_FOUND, e.code());
    }
  }

  @Test
  void theFirstSessionWaitsForASidecarThatStartsLater() throws IOException {
    int port = freePort();
    try (S2SidecarClient client = client(port)) {
      serveLater(port, 500);
      try (ReadSession session = client.readSession("s", ReadOptions.from(ReadStart.seqNum(0)))) {
        assertTrue(session.hasNext());
        assertEquals(3, session.next().records().size());
      }
    }
  }

  @Test
  void afterTheFirstAnswerCallsFailFast() throws IOException, InterruptedException {
    int port = freePort();
    Server server = serve(port);
    try (S2SidecarClient client = client(port)) {
      assertEquals(7, client.checkTail("s").seqNum());
      server.shutdownNow();
      // Gone for good before the next call: a call that reached the server while it was still
      // shutting down is CANCELLED by the server, not refused (1 run in 2 failed so).
      assertTrue(server.awaitTermination(5, TimeUnit.SECONDS));
      long began = System.nanoTime();
      SidecarException e = assertThrows(SidecarException.class, () -> client.checkTail("s"));
      assertEquals(Status.Code.UNAVAILABLE, e.code());
      assertTrue(System.nanoTime() - began < TimeUnit.SECONDS.toNanos(5));
    }
  }

  @Test
  void waitForReadyTimesOutNamingTheTargetThenWaitsForTheSidecar() throws IOException {
    int port = freePort();
    try (S2SidecarClient client = client(port)) {
      SidecarException e = assertThrows(SidecarException.class, () -> client.waitForReady(Duration.ofMillis(300)));
      assertEquals(Status.Code.DEADLINE_EXCEEDED, e.code());
      assertTrue(
          e.getMessage().contains("s2-sidecar at 127.0.0.1:" + port + " is not ready after 0.3 s"), e.getMessage());
      serveLater(port, 300);
      client.waitForReady(Duration.ofSeconds(20));
    }
  }
}
