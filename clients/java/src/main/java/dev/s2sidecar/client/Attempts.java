package dev.s2sidecar.client;

import java.time.Duration;
import java.util.Optional;
import java.util.function.DoubleSupplier;

/** Failures in a row since the last progress, against a policy's budget. No I/O. */
final class Attempts {
  private final RetryPolicy policy;
  private final DoubleSupplier random;
  private int failures;

  Attempts(RetryPolicy policy, DoubleSupplier random) {
    this.policy = policy;
    this.random = random;
  }

  int failures() {
    return failures;
  }

  void progress() {
    failures = 0;
  }

  /**
   * How long to wait before trying again after {@code e}, or empty to throw it: not retryable,
   * budget spent, or (for a call with a deadline) no time left for another attempt after the wait.
   */
  Optional<Duration> retryDelay(SidecarException e, Optional<Duration> remaining) {
    if (!RetryPolicy.isRetryable(e)) {
      return Optional.empty();
    }
    failures++;
    if (failures >= policy.maxAttempts()) {
      return Optional.empty();
    }
    Duration delay = policy.backoff(failures, random);
    if (e.retryAfter().isPresent() && e.retryAfter().get().compareTo(delay) > 0) {
      delay = e.retryAfter().get();
    }
    if (remaining.isPresent() && delay.compareTo(remaining.get()) >= 0) {
      return Optional.empty();
    }
    return Optional.of(delay);
  }
}
