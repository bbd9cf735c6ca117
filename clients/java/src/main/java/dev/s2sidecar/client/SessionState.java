package dev.s2sidecar.client;

import dev.s2sidecar.v1.ReadSessionRequest;
import java.time.Duration;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.function.DoubleSupplier;

/**
 * One resuming ReadSession without I/O (clients/RESUME.md): its position, what it has delivered,
 * and the request that continues it. {@link ReadSession} feeds it every batch (heartbeats
 * included) and every failure, and only calls, sleeps and iterates itself.
 */
final class SessionState {
  private final ReadSessionRequest original;
  private final Attempts attempts;
  private OptionalLong nextSeqNum = OptionalLong.empty(); // empty until a record or heartbeat says
  private long deliveredCount;
  private long deliveredBytes;
  private boolean caughtUp; // what the last message said; a resume starts behind

  SessionState(ReadSessionRequest original, RetryPolicy policy, DoubleSupplier random) {
    this.original = original;
    this.attempts = new Attempts(policy, random);
  }

  OptionalLong nextSeqNum() {
    return nextSeqNum;
  }

  boolean caughtUp() {
    return caughtUp;
  }

  int failures() {
    return attempts.failures();
  }

  void onBatch(ReadBatch batch) {
    caughtUp = batch.caughtUp();
    if (!batch.records().isEmpty()) {
      nextSeqNum = OptionalLong.of(batch.records().get(batch.records().size() - 1).seqNum() + 1);
      deliveredCount += batch.records().size();
      for (SequencedRecord r : batch.records()) {
        deliveredBytes += r.meteredBytes();
      }
    } else if (batch.tail().isPresent()) {
      // A heartbeat: caught up at the tail, so a follower that has seen no record yet still reads
      // what is appended while the sidecar is down.
      nextSeqNum = OptionalLong.of(batch.tail().get().seqNum());
    } else {
      return;
    }
    attempts.progress();
  }

  /**
   * How long to wait before {@link #request()}, or empty to throw {@code e}. Either way {@code e}
   * is told where to resume: the client's own position wins over the sidecar's s2-next-seq-num.
   */
  Optional<Duration> onError(SidecarException e) {
    caughtUp = false;
    nextSeqNum.ifPresent(e::resumeAt);
    return attempts.retryDelay(e, Optional.empty());
  }

  /** The request for the next attempt, or empty when the session's limit is already reached. */
  Optional<ReadSessionRequest> request() {
    ReadSessionRequest.Builder req = original.toBuilder();
    nextSeqNum.ifPresent(req::setSeqNum); // the oneof: replaces a timestamp or tail_offset start
    // count / bytes: unset or 0 means no limit
    if (original.hasCount() && original.getCount() > 0) {
      if (original.getCount() <= deliveredCount) {
        return Optional.empty();
      }
      req.setCount(original.getCount() - deliveredCount);
    }
    if (original.hasBytes() && original.getBytes() > 0) {
      if (original.getBytes() <= deliveredBytes) {
        return Optional.empty();
      }
      req.setBytes(original.getBytes() - deliveredBytes);
    }
    return Optional.of(req.build());
  }
}
