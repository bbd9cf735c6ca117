package dev.s2sidecar.client;

import java.util.OptionalLong;

/**
 * Stop after {@code count} records or before exceeding {@code bytes} metered bytes (empty: no
 * limit). For {@code read} the sidecar also caps one batch at 1000 records and 1 MiB; for {@code
 * readSession} the limit is the whole session's.
 */
public record ReadLimit(OptionalLong count, OptionalLong bytes) {
  public static final ReadLimit NONE = new ReadLimit(OptionalLong.empty(), OptionalLong.empty());

  public static ReadLimit count(long count) {
    return NONE.withCount(count);
  }

  public static ReadLimit bytes(long bytes) {
    return NONE.withBytes(bytes);
  }

  public ReadLimit withCount(long count) {
    return new ReadLimit(OptionalLong.of(count), bytes);
  }

  public ReadLimit withBytes(long bytes) {
    return new ReadLimit(count, OptionalLong.of(bytes));
  }
}
