package dev.s2sidecar.client;

import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.OptionalLong;

/**
 * What to read: a start (none: the tail), a limit, an exclusive {@code until} timestamp
 * (milliseconds), {@code clamp} (a start past the tail starts at the tail instead of failing) and
 * {@code wait} (seconds, at most 60: how long a {@code read} long-polls at the tail, or how long a
 * session waits without a new record before it ends).
 *
 * <pre>{@code
 * ReadOptions.from(ReadStart.seqNum(0)).limit(ReadLimit.count(100))
 * ReadOptions.from(ReadStart.tailOffset(10))            // follow live from 10 before the tail
 * }</pre>
 */
public record ReadOptions(
    Optional<ReadStart> start, ReadLimit limit, OptionalLong until, boolean clamp, OptionalInt waitSeconds) {
  public static final ReadOptions DEFAULT =
      new ReadOptions(Optional.empty(), ReadLimit.NONE, OptionalLong.empty(), false, OptionalInt.empty());

  public ReadOptions {
    Objects.requireNonNull(start, "start");
    Objects.requireNonNull(limit, "limit");
  }

  public static ReadOptions from(ReadStart start) {
    return DEFAULT.start(start);
  }

  public ReadOptions start(ReadStart start) {
    return new ReadOptions(Optional.of(start), limit, until, clamp, waitSeconds);
  }

  public ReadOptions limit(ReadLimit limit) {
    return new ReadOptions(start, limit, until, clamp, waitSeconds);
  }

  public ReadOptions until(long timestampMillis) {
    return new ReadOptions(start, limit, OptionalLong.of(timestampMillis), clamp, waitSeconds);
  }

  public ReadOptions clamp(boolean clamp) {
    return new ReadOptions(start, limit, until, clamp, waitSeconds);
  }

  public ReadOptions waitSeconds(int seconds) {
    return new ReadOptions(start, limit, until, clamp, OptionalInt.of(seconds));
  }
}
