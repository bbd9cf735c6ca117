package dev.s2sidecar.client;

/**
 * Where a read starts: {@link #seqNum}, {@link #timestamp} or {@link #tailOffset}. A read with no
 * start begins at the tail ({@code tailOffset(0)}).
 */
public sealed interface ReadStart {
  /** Start at this sequence number. */
  record SeqNum(long value) implements ReadStart {}

  /** Start at the first record whose timestamp (milliseconds) is at or after {@code value}. */
  record Timestamp(long value) implements ReadStart {}

  /** Start {@code value} records before the tail (saturates at the first record). */
  record TailOffset(long value) implements ReadStart {}

  static ReadStart seqNum(long seqNum) {
    return new SeqNum(seqNum);
  }

  static ReadStart timestamp(long millis) {
    return new Timestamp(millis);
  }

  static ReadStart tailOffset(long records) {
    return new TailOffset(records);
  }
}
