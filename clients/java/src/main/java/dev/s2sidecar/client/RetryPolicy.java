package dev.s2sidecar.client;

import io.grpc.Status;
import java.time.Duration;
import java.util.List;
import java.util.function.DoubleSupplier;

/**
 * How calls ride out a sidecar restart (clients/RESUME.md). {@code maxAttempts}: attempts in a row
 * without progress before the last error is thrown (1: never retry). Retry number {@code n} (1, 2,
 * ...) waits {@code base = min(minBackoff * 2^(n-1), maxBackoff)} plus up to {@code base} of
 * jitter, or the server's RetryInfo delay if that is longer. The defaults are S2's: about a minute
 * of retries, enough for a 30 s restart.
 */
public record RetryPolicy(int maxAttempts, Duration minBackoff, Duration maxBackoff) {
  public static final RetryPolicy DEFAULT = new RetryPolicy(60, Duration.ofMillis(100), Duration.ofSeconds(1));
  /** Resume off: the first failure is thrown. */
  public static final RetryPolicy NONE = new RetryPolicy(1, DEFAULT.minBackoff, DEFAULT.maxBackoff);

  // INTERNAL / UNKNOWN are server bugs unless the message shows that the connection itself broke.
  private static final List<String> TRANSPORT_FAILURES = List.of("RST_STREAM", "Stream removed", "Connection reset");

  public RetryPolicy {
    if (maxAttempts < 1) {
      throw new IllegalArgumentException("maxAttempts must be at least 1");
    }
    if (minBackoff.isNegative() || minBackoff.compareTo(maxBackoff) > 0) {
      throw new IllegalArgumentException("need 0 <= minBackoff <= maxBackoff");
    }
  }

  /** The wait before retry number {@code attempt} (1, 2, ...); {@code random} gives [0, 1). */
  public Duration backoff(int attempt, DoubleSupplier random) {
    Duration base = minBackoff; // min(minBackoff * 2^(n-1), maxBackoff), doubling only up to the cap
    for (int n = 1; n < attempt && base.compareTo(maxBackoff) < 0; n++) {
      base = base.multipliedBy(2);
    }
    if (base.compareTo(maxBackoff) > 0) {
      base = maxBackoff;
    }
    return base.plusNanos((long) (random.getAsDouble() * base.toNanos()));
  }

  /** The table in RESUME.md. CANCELLED and DEADLINE_EXCEEDED are the caller's own doing. */
  public static boolean isRetryable(SidecarException e) {
    if (e.metadata().containsKey("attempts")) {
      return false; // the sidecar already retried S2 for this call
    }
    Status.Code code = e.code();
    return switch (code) {
      case UNAVAILABLE -> true;
      case RESOURCE_EXHAUSTED, ABORTED -> e.retryAfter().isPresent();
      case INTERNAL, UNKNOWN -> {
        String message = String.valueOf(e.getMessage());
        yield TRANSPORT_FAILURES.stream().anyMatch(message::contains);
      }
      default -> false;
    };
  }
}
