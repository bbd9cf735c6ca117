package dev.s2sidecar.client;

import dev.s2sidecar.v1.ReadSessionRequest;
import dev.s2sidecar.v1.ReadSessionResponse;
import io.grpc.Context;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * A ReadSession's batches, in order, blocking in {@link #hasNext()} until the next one arrives.
 * Heartbeats (no records, {@code tail} set) are batches too: the session is caught up to their
 * tail. Without a stop the session follows the stream for ever; {@link #close()} ends it (also
 * from another thread, which makes a blocked {@code hasNext()} return false).
 *
 * <p>With resume on (the default) a failure the sidecar's restart explains is retried from the
 * session's own position: every record exactly once, in order (clients/RESUME.md). Other failures,
 * or the retry budget spent, throw a {@link SidecarException} from {@code hasNext()} whose {@link
 * SidecarException#nextSeqNum()} says where to resume.
 */
public final class ReadSession implements Iterator<ReadBatch>, AutoCloseable {
  private final S2SidecarClient client;
  private final SessionState state;
  private final Optional<EncryptionKey> key; // sent by every attempt
  private volatile Context.CancellableContext call; // the current attempt; close() may cancel it from another thread
  private Iterator<ReadSessionResponse> responses;
  private ReadBatch next;
  private boolean done;
  private volatile boolean closed;

  ReadSession(S2SidecarClient client, ReadSessionRequest request, Optional<EncryptionKey> key) {
    this.client = client;
    this.key = key;
    this.state = new SessionState(request, client.retryPolicy(), Math::random);
  }

  @Override
  public boolean hasNext() {
    while (next == null && !done) {
      if (responses == null && !open()) {
        done = true;
        break;
      }
      try {
        if (responses.hasNext()) {
          next = Convert.batch(responses.next());
          client.noteAnswer(null);
          state.onBatch(next);
        } else {
          client.noteAnswer(null);
          done = true;
        }
      } catch (StatusRuntimeException e) {
        endCall();
        if (closed) {
          done = true;
          break;
        }
        SidecarException error = SidecarException.from(e);
        client.noteAnswer(error);
        Optional<Duration> delay = state.onError(error);
        if (delay.isEmpty()) {
          done = true;
          throw error;
        }
        try {
          client.beforeRetry("ReadSession", state.failures(), delay.get(), error);
        } catch (SidecarException interrupted) {
          done = true;
          throw interrupted;
        }
      }
    }
    if (done) {
      endCall();
    }
    return next != null;
  }

  @Override
  public ReadBatch next() {
    if (!hasNext()) {
      throw new NoSuchElementException();
    }
    ReadBatch batch = next;
    next = null;
    return batch;
  }

  /** Where the session stands: the seq_num after the last record or heartbeat delivered. */
  public OptionalLong nextSeqNum() {
    return state.nextSeqNum();
  }

  /**
   * Whether the last message the session received (a heartbeat included) said every record before
   * the tail was delivered, as S2's SDKs' {@code is_caught_up()}: false at the start, and after a
   * resume until a message says so. {@link #hasNext()} receives ahead, so after it this is the
   * state of the batch {@link #next()} returns.
   */
  public boolean caughtUp() {
    return state.caughtUp();
  }

  /** Ends the session (cancels the call). Idempotent. */
  @Override
  public void close() {
    closed = true;
    Context.CancellableContext c = call;
    if (c != null) {
      c.cancel(null);
    }
  }

  /** Starts the next attempt; false when the session's limit is already reached or it is closed. */
  private boolean open() {
    Optional<ReadSessionRequest> request = state.request();
    if (request.isEmpty() || closed) {
      return false;
    }
    // The blocking stub's call belongs to the Context current when it starts: a cancellable one
    // lets close() end it.
    Context.CancellableContext attempt = Context.current().withCancellation();
    call = attempt;
    Context previous = attempt.attach();
    try {
      responses = client.stub(key).readSession(request.get());
    } finally {
      attempt.detach(previous);
    }
    if (closed) {
      attempt.cancel(null); // close() came between the check above and `call = attempt`
    }
    return true;
  }

  private void endCall() {
    Context.CancellableContext attempt = call;
    if (attempt != null) {
      attempt.cancel(null);
      call = null;
    }
    responses = null;
  }
}
