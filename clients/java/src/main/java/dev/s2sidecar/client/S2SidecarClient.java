package dev.s2sidecar.client;

import dev.s2sidecar.v1.CheckTailRequest;
import dev.s2sidecar.v1.StreamServiceGrpc;
import dev.s2sidecar.v1.StreamServiceGrpc.StreamServiceBlockingStub;
import io.grpc.ClientInterceptors;
import io.grpc.ConnectivityState;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;

/**
 * A blocking client for an s2-sidecar: {@link #read}, {@link #readSession} and {@link #checkTail}.
 * Thread-safe; one per process is plenty (it holds one gRPC channel). Close it when done.
 *
 * <pre>{@code
 * try (var client = S2SidecarClient.builder().build()) {
 *   ReadBatch batch = client.read("orders", ReadOptions.from(ReadStart.seqNum(0)));
 *   try (ReadSession session = client.readSession("orders", ReadOptions.from(ReadStart.tailOffset(10)))) {
 *     while (session.hasNext()) { for (SequencedRecord r : session.next().records()) { ... } }
 *   }
 *   StreamPosition tail = client.checkTail("orders");
 * }
 * }</pre>
 *
 * <p>Until the sidecar has answered once, calls wait for the connection (gRPC's wait-for-ready)
 * within their deadline instead of failing fast: an app that starts before its sidecar waits for
 * it. {@link #waitForReady(Duration)} waits for it explicitly, at start.
 */
public final class S2SidecarClient implements AutoCloseable {
  /** The sidecar's address when {@code S2_SIDECAR_ADDRESS} is not set. */
  public static final String DEFAULT_TARGET = "127.0.0.1:50051";

  // A batch is at most the sidecar's --max-message-bytes (4 MiB by default) plus framing; leave
  // room for a sidecar configured higher rather than fail on gRPC's 4 MiB default.
  private static final int MAX_INBOUND_MESSAGE_BYTES = 64 << 20;

  /** Told before each retry: which call, the attempt number (1, 2, ...), the wait, and why. */
  @FunctionalInterface
  public interface RetryListener {
    void onRetry(String method, int attempt, Duration delay, SidecarException cause);
  }

  private final ManagedChannel ownedChannel; // null when the caller passed a channel
  private final ManagedChannel channel;
  private final StreamServiceBlockingStub stub;
  private final String basin;
  private final Duration timeout;
  private final RetryPolicy retryPolicy;
  private final RetryListener retryListener;
  private final Optional<EncryptionKey> encryptionKey;
  private final String target;
  // The sidecar has answered a call: from then on calls fail fast while it is away (and the retry
  // policy rides that out) instead of waiting for the connection.
  private final AtomicBoolean answered = new AtomicBoolean();

  private S2SidecarClient(Builder b) {
    ManagedChannel managed = b.channel;
    if (managed == null) {
      managed =
          Grpc.newChannelBuilder(b.target, InsecureChannelCredentials.create())
              .maxInboundMessageSize(MAX_INBOUND_MESSAGE_BYTES)
              .build();
      ownedChannel = managed;
      target = b.target;
    } else {
      ownedChannel = null;
      target = managed.authority();
    }
    Metadata headers = new Metadata();
    b.token.ifPresent(t -> headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + t));
    this.channel = managed;
    this.stub =
        StreamServiceGrpc.newBlockingStub(ClientInterceptors.intercept(managed, MetadataUtils.newAttachHeadersInterceptor(headers)));
    this.basin = b.basin;
    this.timeout = b.timeout;
    this.retryPolicy = b.resume ? b.retryPolicy : RetryPolicy.NONE;
    this.retryListener = b.retryListener;
    this.encryptionKey = b.encryptionKey;
  }

  public static Builder builder() {
    return new Builder();
  }

  /** {@link #read(String, ReadOptions)} with {@link ReadOptions#DEFAULT}: one batch at the tail. */
  public ReadBatch read(String stream) {
    return read(stream, ReadOptions.DEFAULT);
  }

  /** {@link #readSession(String, ReadOptions)} with {@link ReadOptions#DEFAULT}: follows new records. */
  public ReadSession readSession(String stream) {
    return readSession(stream, ReadOptions.DEFAULT);
  }

  /**
   * One batch: at most 1000 records and 1 MiB of metered bytes, from {@code options.start()} (none:
   * the tail, as the proto says). With {@code waitSeconds} it long-polls at the tail; without it a
   * read at the tail throws {@link SidecarException.RangeNotSatisfiable}. Retried within the deadline
   * (the timeout, the options' else the client's, plus the wait) when the sidecar is restarting.
   */
  public ReadBatch read(String stream, ReadOptions options) {
    var request = Convert.readRequest(basin, stream, options);
    Duration wait = Duration.ofSeconds(options.waitSeconds().orElse(0));
    Duration within = options.timeout().orElse(timeout).plus(wait);
    Optional<EncryptionKey> key = keyFor(options);
    dev.s2sidecar.v1.ReadResponse response;
    try {
      response = unary("Read", within, key, s -> s.read(request));
    } catch (SidecarException.RangeNotSatisfiable e) {
      if (options.start().isEmpty() && options.waitSeconds().isEmpty()) {
        throw e.withMessage(e.getMessage() + " (a read with no start reads at the tail, as the proto says: pass a"
            + " start, e.g. ReadOptions.from(ReadStart.seqNum(0)) to read from the first record, or set waitSeconds)");
      }
      throw e;
    }
    return Convert.batch(response);
  }

  /**
   * Streams batches from {@code options.start()} (none: the tail, i.e. new records only). With no
   * stop (count, bytes, until) it follows the stream live for ever; close the session to end it.
   *
   * @throws IllegalArgumentException with a {@code timeout} (a session has no deadline), or with
   *     {@code ignoreCommandRecords} and a count or bytes limit: the records left out count toward
   *     the limit but are never delivered, so a resume could not reduce it exactly
   */
  public ReadSession readSession(String stream, ReadOptions options) {
    if (options.timeout().isPresent()) {
      throw new IllegalArgumentException(
          "readSession: a session has no deadline (close() ends it, and waitSeconds ends it after"
              + " that long without a new record); timeout is a read's");
    }
    ReadLimit limit = options.limit();
    if (options.ignoreCommandRecords()
        && (limit.count().orElse(0) > 0 || limit.bytes().orElse(0) > 0)) {
      throw new IllegalArgumentException(
          "readSession: ignoreCommandRecords with a count or bytes limit cannot resume exactly (the"
              + " records left out count toward the limit but are never delivered): leave the limit"
              + " to the app (close the session), or drop ignoreCommandRecords");
    }
    return new ReadSession(this, Convert.readSessionRequest(basin, stream, options), keyFor(options));
  }

  /** The key a read sends: its options' own, else the client's. */
  private Optional<EncryptionKey> keyFor(ReadOptions options) {
    return options.encryptionKey().or(() -> encryptionKey);
  }

  /**
   * The stream's tail: the seq_num the next record will get, and the last record's timestamp. The
   * sidecar may answer from its cache if its tail is at most its default age old (1 s unless
   * configured).
   */
  public StreamPosition checkTail(String stream) {
    return checkTail(stream, CheckTailOptions.DEFAULT);
  }

  /**
   * The stream's tail, at most {@code maxStaleness} old: {@code Duration.ZERO} asks S2 unless a
   * live session on this sidecar vouches for the tail.
   */
  public StreamPosition checkTail(String stream, Duration maxStaleness) {
    return checkTail(stream, CheckTailOptions.DEFAULT.maxStaleness(maxStaleness));
  }

  /**
   * The stream's tail, as old as {@code options.maxStaleness()} allows, within {@code
   * options.timeout()} (else the client's timeout), retries included.
   */
  public StreamPosition checkTail(String stream, CheckTailOptions options) {
    var request = CheckTailRequest.newBuilder().setBasin(basin).setStream(stream);
    options.maxStaleness().ifPresent(d -> request.setMaxStalenessMs(Math.toIntExact(d.toMillis())));
    Duration within = options.timeout().orElse(timeout);
    // No key: S2 answers tails without one.
    return Convert.position(unary("CheckTail", within, Optional.empty(), s -> s.checkTail(request.build())).getTail());
  }

  /**
   * Waits until the connection to the sidecar is up (READY), connecting if it is idle: use it at
   * start, before the first call, for a sidecar that starts with the app. Reconnects at least every
   * {@link RetryPolicy#maxBackoff()} meanwhile (not grpc-java's backoff of up to 2 minutes).
   *
   * @throws SidecarException {@code DEADLINE_EXCEEDED}, "s2-sidecar at TARGET is not ready after
   *     N s", when {@code timeout} passes first; {@code CANCELLED} if the thread is interrupted or
   *     the client is closed
   */
  public void waitForReady(Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    long poll = Math.max(retryPolicy.maxBackoff().toNanos(), TimeUnit.MILLISECONDS.toNanos(100));
    ConnectivityState state = channel.getState(true);
    while (state != ConnectivityState.READY) {
      long left = deadline - System.nanoTime();
      if (state == ConnectivityState.SHUTDOWN) {
        throw new SidecarException(
            Status.Code.CANCELLED, "the client of s2-sidecar at " + target + " is closed", SidecarException.Details.NONE, null);
      }
      if (left <= 0) {
        throw new SidecarException(
            Status.Code.DEADLINE_EXCEEDED,
            String.format("s2-sidecar at %s is not ready after %s s (connection %s)", target, seconds(timeout), state),
            SidecarException.Details.NONE,
            null);
      }
      CountDownLatch changed = new CountDownLatch(1);
      channel.notifyWhenStateChanged(state, changed::countDown);
      try {
        if (!changed.await(Math.min(left, poll), TimeUnit.NANOSECONDS)
            && state == ConnectivityState.TRANSIENT_FAILURE) {
          channel.resetConnectBackoff(); // try again now, within this policy's backoff
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new SidecarException(
            Status.Code.CANCELLED,
            "interrupted while waiting for s2-sidecar at " + target,
            SidecarException.Details.NONE,
            e);
      }
      state = channel.getState(true);
    }
  }

  private static String seconds(Duration d) {
    return java.math.BigDecimal.valueOf(d.toMillis(), 3).stripTrailingZeros().toPlainString();
  }

  /** The target the client connects to (for a channel given to the builder: its authority). */
  public String target() {
    return target;
  }

  @Override
  public void close() {
    if (ownedChannel != null) {
      ownedChannel.shutdownNow();
      try {
        ownedChannel.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /**
   * The stub for the next call: waiting for the connection until the sidecar first answers, and
   * sending {@code key} as {@code s2-encryption-key} when present.
   */
  StreamServiceBlockingStub stub(Optional<EncryptionKey> key) {
    StreamServiceBlockingStub s = answered.get() ? stub : stub.withWaitForReady();
    return key.isEmpty() ? s : s.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(key.get().metadata()));
  }

  /**
   * Notes that the sidecar answered: a response, or a status it sent (not UNAVAILABLE, nor the
   * caller's deadline or cancellation); {@code error} null for a response.
   */
  void noteAnswer(SidecarException error) {
    if (error == null
        || !(error.code() == Status.Code.UNAVAILABLE
            || error.code() == Status.Code.DEADLINE_EXCEEDED
            || error.code() == Status.Code.CANCELLED)) {
      answered.set(true);
    }
  }

  RetryPolicy retryPolicy() {
    return retryPolicy;
  }

  private <T> T unary(
      String method, Duration within, Optional<EncryptionKey> key, Function<StreamServiceBlockingStub, T> call) {
    Deadline deadline = Deadline.after(within.toNanos(), TimeUnit.NANOSECONDS);
    Attempts attempts = new Attempts(retryPolicy, Math::random);
    while (true) {
      try {
        T response = call.apply(stub(key).withDeadline(deadline));
        noteAnswer(null);
        return response;
      } catch (StatusRuntimeException e) {
        SidecarException error = SidecarException.from(e);
        noteAnswer(error);
        Duration remaining = Duration.ofNanos(deadline.timeRemaining(TimeUnit.NANOSECONDS));
        Optional<Duration> delay = attempts.retryDelay(error, Optional.of(remaining));
        if (delay.isEmpty()) {
          throw error;
        }
        beforeRetry(method, attempts.failures(), delay.get(), error);
      }
    }
  }

  /** Waits out a retry's delay; throws {@code cause} if the thread is interrupted meanwhile. */
  void beforeRetry(String method, int attempt, Duration delay, SidecarException cause) {
    if (retryListener != null) {
      retryListener.onRetry(method, attempt, delay, cause);
    }
    try {
      Thread.sleep(delay.toMillis(), delay.toNanosPart() % 1_000_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw cause;
    }
    // grpc-java has no public setting for the channel's reconnect backoff (up to 2 minutes by
    // default, failing every call fast meanwhile): reset it so that the next attempt connects
    // now, which bounds it by this policy's backoff instead (RESUME.md, "Backoff").
    channel.resetConnectBackoff();
  }

  /** Options for {@link S2SidecarClient}; every one has a default. */
  public static final class Builder {
    private String target = Optional.ofNullable(System.getenv("S2_SIDECAR_ADDRESS"))
        .filter(s -> !s.isEmpty())
        .orElse(DEFAULT_TARGET);
    private String basin = "";
    private Optional<String> token = Optional.empty();
    private Duration timeout = Duration.ofSeconds(30);
    private boolean resume = true;
    private RetryPolicy retryPolicy = RetryPolicy.DEFAULT;
    private RetryListener retryListener;
    private ManagedChannel channel;
    private Optional<EncryptionKey> encryptionKey = Optional.empty();

    private Builder() {}

    /**
     * {@code host:port} or {@code unix:/path/to.sock} (or any gRPC target). Default: env {@code
     * S2_SIDECAR_ADDRESS}, else {@value #DEFAULT_TARGET}.
     */
    public Builder target(String target) {
      this.target = Objects.requireNonNull(target);
      return this;
    }

    /** The basin; empty (the default) uses the sidecar's default basin. */
    public Builder basin(String basin) {
      this.basin = Objects.requireNonNull(basin);
      return this;
    }

    /** The sidecar's app token (its S2_SIDECAR_APP_TOKEN), sent as {@code authorization: Bearer}. */
    public Builder token(String token) {
      this.token = Optional.ofNullable(token).filter(t -> !t.isEmpty());
      return this;
    }

    /**
     * The deadline of {@code read} (plus its wait) and {@code checkTail}, retries included. Default
     * 30 s. A call's own ({@link ReadOptions#timeout}, {@link CheckTailOptions#timeout}) replaces it.
     */
    public Builder timeout(Duration timeout) {
      this.timeout = Objects.requireNonNull(timeout);
      return this;
    }

    /** Auto-resume and retries (on by default); off, the first failure is thrown. */
    public Builder resume(boolean resume) {
      this.resume = resume;
      return this;
    }

    /** The retry budget and backoff bounds (default {@link RetryPolicy#DEFAULT}). */
    public Builder retryPolicy(RetryPolicy policy) {
      this.retryPolicy = Objects.requireNonNull(policy);
      return this;
    }

    /** Told before each retry, e.g. to log it. */
    public Builder retryListener(RetryListener listener) {
      this.retryListener = listener;
      return this;
    }

    /**
     * The key of encrypted streams, as its 32 raw bytes: sent as {@code s2-encryption-key} with
     * every {@code read} and {@code readSession} (and each resume); a call's own key ({@link
     * ReadOptions#encryptionKey(byte[])}) wins. {@code checkTail} sends none.
     */
    public Builder encryptionKey(byte[] key) {
      return encryptionKey(EncryptionKey.of(key));
    }

    /** The key of encrypted streams as standard padded base64; see {@link #encryptionKey(byte[])}. */
    public Builder encryptionKey(String base64) {
      return encryptionKey(EncryptionKey.ofBase64(base64));
    }

    public Builder encryptionKey(EncryptionKey key) {
      this.encryptionKey = Optional.of(key);
      return this;
    }

    /** Use this channel (e.g. with TLS, or in-process in tests) instead of one for the target; not closed by the client. */
    public Builder channel(ManagedChannel channel) {
      this.channel = channel;
      return this;
    }

    public S2SidecarClient build() {
      return new S2SidecarClient(this);
    }
  }
}
