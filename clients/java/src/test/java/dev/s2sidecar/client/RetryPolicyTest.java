package dev.s2sidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import java.time.Duration;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class RetryPolicyTest {
  private static final RetryPolicy S2 = RetryPolicy.DEFAULT;

  @Test
  void backoffDoublesFrom100MsUpTo1SecondPlusUpToAsMuchJitter() {
    assertEquals(Duration.ofMillis(100), S2.backoff(1, () -> 0.0));
    assertEquals(Duration.ofMillis(200), S2.backoff(2, () -> 0.0));
    assertEquals(Duration.ofMillis(800), S2.backoff(4, () -> 0.0));
    assertEquals(Duration.ofSeconds(1), S2.backoff(5, () -> 0.0));
    assertEquals(Duration.ofMillis(150), S2.backoff(1, () -> 0.5));
    assertEquals(Duration.ofMillis(1500), S2.backoff(9, () -> 0.5));
    // no overflow however long the outage
    assertEquals(Duration.ofSeconds(1), S2.backoff(64, () -> 0.0));
    assertEquals(Duration.ofSeconds(1), S2.backoff(1000, () -> 0.0));
  }

  @Test
  void retriesWhatRESUMEmdSaysAndNothingElse() {
    assertTrue(RetryPolicy.isRetryable(Errors.error(Status.Code.UNAVAILABLE, "draining")));
    // the sidecar already retried S2 for the call: not again, whatever the code or RetryInfo
    assertFalse(RetryPolicy.isRetryable(Errors.error(Status.Code.UNAVAILABLE, "cannot connect", Errors.retried(11))));
    assertFalse(RetryPolicy.isRetryable(
        Errors.error(Status.Code.RESOURCE_EXHAUSTED, "slow down", Errors.retried(11), Errors.retryInfo(50))));
    assertTrue(RetryPolicy.isRetryable(Errors.error(Status.Code.RESOURCE_EXHAUSTED, "slow down", Errors.retryInfo(50))));
    assertFalse(RetryPolicy.isRetryable(Errors.error(Status.Code.RESOURCE_EXHAUSTED, "quota")));
    assertTrue(RetryPolicy.isRetryable(Errors.error(Status.Code.ABORTED, "conflict", Errors.retryInfo(50))));
    assertFalse(RetryPolicy.isRetryable(Errors.error(Status.Code.ABORTED, "conflict")));
    assertTrue(RetryPolicy.isRetryable(Errors.error(Status.Code.INTERNAL, "RST_STREAM closed stream. HTTP/2 error code: CANCEL")));
    assertTrue(RetryPolicy.isRetryable(Errors.error(Status.Code.UNKNOWN, "Stream removed")));
    assertTrue(RetryPolicy.isRetryable(Errors.error(Status.Code.INTERNAL, "Connection reset by peer")));
    assertFalse(RetryPolicy.isRetryable(Errors.error(Status.Code.INTERNAL, "a bug")));
    for (Status.Code code : new Status.Code[] {
        Status.Code.NOT_FOUND, Status.Code.INVALID_ARGUMENT, Status.Code.OUT_OF_RANGE, Status.Code.PERMISSION_DENIED,
        Status.Code.UNAUTHENTICATED, Status.Code.FAILED_PRECONDITION, Status.Code.CANCELLED,
        Status.Code.DEADLINE_EXCEEDED}) {
      assertFalse(RetryPolicy.isRetryable(Errors.error(code, "no")), code::toString);
    }
  }

  @Test
  void attemptsStopAtTheBudgetAndProgressResetsThem() {
    Attempts attempts = new Attempts(new RetryPolicy(3, Duration.ofMillis(100), Duration.ofSeconds(1)), () -> 0.0);
    SidecarException down = Errors.error(Status.Code.UNAVAILABLE, "down");
    assertEquals(Optional.of(Duration.ofMillis(100)), attempts.retryDelay(down, Optional.empty()));
    assertEquals(Optional.of(Duration.ofMillis(200)), attempts.retryDelay(down, Optional.empty()));
    assertEquals(Optional.empty(), attempts.retryDelay(down, Optional.empty())); // the third attempt failed
    attempts.progress();
    assertEquals(Optional.of(Duration.ofMillis(100)), attempts.retryDelay(down, Optional.empty()));
  }

  @Test
  void aLongerRetryInfoDelayWinsAndADeadlineEndsRetries() {
    Attempts attempts = new Attempts(S2, () -> 0.0);
    var slowDown = Errors.error(Status.Code.RESOURCE_EXHAUSTED, "slow down", Errors.retryInfo(2500));
    assertEquals(Optional.of(Duration.ofMillis(2500)), attempts.retryDelay(slowDown, Optional.empty()));
    var down = Errors.error(Status.Code.UNAVAILABLE, "down");
    assertEquals(Optional.empty(), attempts.retryDelay(down, Optional.of(Duration.ofMillis(150))));
    assertEquals(Optional.empty(), attempts.retryDelay(Errors.error(Status.Code.NOT_FOUND, "no"), Optional.empty()));
  }

  @Test
  void noneMeansTheFirstFailureIsThrown() {
    Attempts attempts = new Attempts(RetryPolicy.NONE, () -> 0.0);
    assertEquals(Optional.empty(), attempts.retryDelay(Errors.error(Status.Code.UNAVAILABLE, "down"), Optional.empty()));
  }

  @Test
  void rejectsNonsense() {
    assertThrows(IllegalArgumentException.class, () -> new RetryPolicy(0, Duration.ZERO, Duration.ZERO));
    assertThrows(IllegalArgumentException.class, () -> new RetryPolicy(1, Duration.ofSeconds(2), Duration.ofSeconds(1)));
  }
}
