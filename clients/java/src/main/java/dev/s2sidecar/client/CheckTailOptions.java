package dev.s2sidecar.client;

import java.time.Duration;
import java.util.Objects;
import java.util.Optional;

/**
 * How to ask for a tail: {@code maxStaleness}, how old a tail the sidecar may answer from its
 * cache ({@code Duration.ZERO} asks S2 unless a live session on the sidecar vouches for the tail;
 * none: the sidecar's default, 1 s unless configured), and {@code timeout}, this call's deadline,
 * retries included, instead of the client's ({@link S2SidecarClient.Builder#timeout}).
 *
 * <pre>{@code
 * client.checkTail("orders", CheckTailOptions.DEFAULT.maxStaleness(Duration.ZERO).timeout(Duration.ofSeconds(2)))
 * }</pre>
 */
public record CheckTailOptions(Optional<Duration> maxStaleness, Optional<Duration> timeout) {
  public static final CheckTailOptions DEFAULT = new CheckTailOptions(Optional.empty(), Optional.empty());

  public CheckTailOptions {
    Objects.requireNonNull(maxStaleness, "maxStaleness");
    Objects.requireNonNull(timeout, "timeout");
  }

  public CheckTailOptions maxStaleness(Duration maxStaleness) {
    return new CheckTailOptions(Optional.of(Objects.requireNonNull(maxStaleness)), timeout);
  }

  /** This call's deadline, retries included, instead of the client's. */
  public CheckTailOptions timeout(Duration timeout) {
    return new CheckTailOptions(maxStaleness, Optional.of(Objects.requireNonNull(timeout)));
  }
}
