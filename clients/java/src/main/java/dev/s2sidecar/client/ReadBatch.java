package dev.s2sidecar.client;

import java.util.List;
import java.util.Optional;

/**
 * One batch of records in seq_num order. {@code records} is empty when a {@code wait} ran out, or
 * for a session heartbeat; {@code tail} is the stream's tail when the sidecar sent one (always on
 * heartbeats; on records only for those S2 served from its live path).
 */
public record ReadBatch(List<SequencedRecord> records, Optional<StreamPosition> tail) {
  public ReadBatch {
    records = List.copyOf(records);
  }

  /** A session heartbeat: no records, and the tail the session is caught up to. */
  public boolean isHeartbeat() {
    return records.isEmpty() && tail.isPresent();
  }
}
