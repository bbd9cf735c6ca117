package dev.s2sidecar.client;

import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.OptionalLong;

/**
 * What to read: a start (none: the tail), a limit, an exclusive {@code until} timestamp
 * (milliseconds), {@code clamp} (a start past the tail starts at the tail instead of failing) and
 * {@code wait} (seconds, at most 60: how long a {@code read} long-polls at the tail, or how long a
 * session waits without a new record before it ends), an encrypted stream's key for this call,
 * instead of the client's ({@link EncryptionKey}; a session sends it on every resume), and
 * {@code ignoreCommandRecords}: leave command records (fence, trim: one header with an empty name)
 * out. As in S2's SDKs they still count toward the limit; a {@code readSession} with it and a
 * count or bytes limit is refused ({@link IllegalArgumentException}), since its resume could not
 * reduce the limit exactly. {@code timeout}: this {@code read}'s deadline, retries included,
 * instead of the client's ({@link S2SidecarClient.Builder#timeout}), with the same meaning: the
 * wait comes on top. A session has no deadline ({@code close()} ends it), so {@code readSession}
 * refuses it ({@link IllegalArgumentException}).
 *
 * <pre>{@code
 * ReadOptions.from(ReadStart.seqNum(0)).limit(ReadLimit.count(100))
 * ReadOptions.from(ReadStart.tailOffset(10))            // follow live from 10 before the tail
 * ReadOptions.from(ReadStart.seqNum(0)).encryptionKey(keyBytes)  // or the base64 String
 * ReadOptions.from(ReadStart.seqNum(0)).waitSeconds(10).timeout(Duration.ofSeconds(2))  // 12 s in all
 * }</pre>
 */
public record ReadOptions(
    Optional<ReadStart> start,
    ReadLimit limit,
    OptionalLong until,
    boolean clamp,
    OptionalInt waitSeconds,
    Optional<EncryptionKey> encryptionKey,
    boolean ignoreCommandRecords,
    Optional<Duration> timeout) {
  public static final ReadOptions DEFAULT =
      new ReadOptions(Optional.empty(), ReadLimit.NONE, OptionalLong.empty(), false, OptionalInt.empty());

  public ReadOptions {
    Objects.requireNonNull(start, "start");
    Objects.requireNonNull(limit, "limit");
    Objects.requireNonNull(encryptionKey, "encryptionKey");
    Objects.requireNonNull(timeout, "timeout");
  }

  /** Options without a key of their own (the client's key, if any, is sent). */
  public ReadOptions(
      Optional<ReadStart> start, ReadLimit limit, OptionalLong until, boolean clamp, OptionalInt waitSeconds) {
    this(start, limit, until, clamp, waitSeconds, Optional.empty());
  }

  /** Options that keep command records (the six components before {@code ignoreCommandRecords}). */
  public ReadOptions(
      Optional<ReadStart> start,
      ReadLimit limit,
      OptionalLong until,
      boolean clamp,
      OptionalInt waitSeconds,
      Optional<EncryptionKey> encryptionKey) {
    this(start, limit, until, clamp, waitSeconds, encryptionKey, false);
  }

  /** Options under the client's timeout (the seven components before {@code timeout}). */
  public ReadOptions(
      Optional<ReadStart> start,
      ReadLimit limit,
      OptionalLong until,
      boolean clamp,
      OptionalInt waitSeconds,
      Optional<EncryptionKey> encryptionKey,
      boolean ignoreCommandRecords) {
    this(start, limit, until, clamp, waitSeconds, encryptionKey, ignoreCommandRecords, Optional.empty());
  }

  public static ReadOptions from(ReadStart start) {
    return DEFAULT.start(start);
  }

  public ReadOptions start(ReadStart start) {
    return new ReadOptions(Optional.of(start), limit, until, clamp, waitSeconds, encryptionKey, ignoreCommandRecords, timeout);
  }

  public ReadOptions limit(ReadLimit limit) {
    return new ReadOptions(start, limit, until, clamp, waitSeconds, encryptionKey, ignoreCommandRecords, timeout);
  }

  public ReadOptions until(long timestampMillis) {
    return new ReadOptions(start, limit, OptionalLong.of(timestampMillis), clamp, waitSeconds, encryptionKey, ignoreCommandRecords, timeout);
  }

  public ReadOptions clamp(boolean clamp) {
    return new ReadOptions(start, limit, until, clamp, waitSeconds, encryptionKey, ignoreCommandRecords, timeout);
  }

  public ReadOptions waitSeconds(int seconds) {
    return new ReadOptions(start, limit, until, clamp, OptionalInt.of(seconds), encryptionKey, ignoreCommandRecords, timeout);
  }

  /** This call's key for an encrypted stream, as its 32 raw bytes; it wins over the client's. */
  public ReadOptions encryptionKey(byte[] key) {
    return encryptionKey(EncryptionKey.of(key));
  }

  /** This call's key for an encrypted stream, as standard padded base64; it wins over the client's. */
  public ReadOptions encryptionKey(String base64) {
    return encryptionKey(EncryptionKey.ofBase64(base64));
  }

  public ReadOptions encryptionKey(EncryptionKey key) {
    return new ReadOptions(start, limit, until, clamp, waitSeconds, Optional.of(key), ignoreCommandRecords, timeout);
  }

  /** Leave command records (fence, trim) out of the answer; see the class comment. */
  public ReadOptions ignoreCommandRecords(boolean ignore) {
    return new ReadOptions(start, limit, until, clamp, waitSeconds, encryptionKey, ignore, timeout);
  }

  /**
   * This {@code read}'s deadline, retries included, instead of the client's: the wait comes on
   * top, as it does on the client's. {@code readSession} refuses it.
   */
  public ReadOptions timeout(Duration timeout) {
    return new ReadOptions(
        start, limit, until, clamp, waitSeconds, encryptionKey, ignoreCommandRecords, Optional.of(Objects.requireNonNull(timeout)));
  }
}
