package dev.s2sidecar.client;

import java.util.List;
import java.util.Optional;

/**
 * One batch of records in seq_num order. {@code records} is empty when a {@code wait} ran out, or
 * for a session heartbeat; {@code tail} is the stream's tail when the sidecar sent one (always on
 * heartbeats; on records only for those S2 served from its live path). {@code caughtUp} (sessions
 * only): with this batch every record before the tail was delivered (or left out by {@code
 * ignoreCommandRecords}); true on every heartbeat, as S2's SDKs' {@code is_caught_up()}.
 */
public record ReadBatch(List<SequencedRecord> records, Optional<StreamPosition> tail, boolean caughtUp) {
  public ReadBatch {
    records = List.copyOf(records);
  }

  /** A batch that does not say it is caught up (a {@code read}'s). */
  public ReadBatch(List<SequencedRecord> records, Optional<StreamPosition> tail) {
    this(records, tail, false);
  }

  /** A session heartbeat: no records, and the tail the session is caught up to. */
  public boolean isHeartbeat() {
    return records.isEmpty() && tail.isPresent();
  }
}
