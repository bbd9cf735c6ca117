package dev.s2sidecar.client;

import io.grpc.Metadata;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.Objects;

/**
 * The key of an encrypted stream (the sidecar's docs/encryption.md), sent as the {@code
 * s2-encryption-key} metadata of a read. Made from the 32 raw bytes ({@link #of(byte[])}: the
 * client base64-encodes them) or from their standard padded base64 as S2 takes it ({@link
 * #ofBase64(String)}); the builder's and {@link ReadOptions}' {@code encryptionKey} overloads take
 * either. Length and alphabet are the sidecar's to check ({@code INVALID_ARGUMENT}, naming no key).
 *
 * <p>{@link #toString()} never shows the key, so neither does a {@link ReadOptions} printed or
 * logged; nor does any exception this client throws.
 */
public final class EncryptionKey {
  static final Metadata.Key<String> HEADER = Metadata.Key.of("s2-encryption-key", Metadata.ASCII_STRING_MARSHALLER);

  private final String base64;

  private EncryptionKey(String base64) {
    this.base64 = base64;
  }

  /** The 32 raw bytes of a key (copied and encoded now). */
  public static EncryptionKey of(byte[] key) {
    return new EncryptionKey(Base64.getEncoder().encodeToString(Objects.requireNonNull(key, "key")));
  }

  /**
   * A key as standard padded base64 text.
   *
   * @throws IllegalArgumentException when it holds a character gRPC cannot carry (not printable
   *     ASCII); the message does not show it
   */
  public static EncryptionKey ofBase64(String key) {
    Objects.requireNonNull(key, "key");
    for (int i = 0; i < key.length(); i++) {
      char c = key.charAt(i);
      if (c < ' ' || c > '~') {
        throw new IllegalArgumentException(
            "an encryption key given as a String must be base64 text (printable ASCII); pass the raw key as byte[]");
      }
    }
    return new EncryptionKey(key);
  }

  /** The metadata that carries it (with the client's own headers, added by the stub). */
  Metadata metadata() {
    Metadata md = new Metadata();
    md.put(HEADER, base64);
    return md;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof EncryptionKey other
        && MessageDigest.isEqual(
            base64.getBytes(StandardCharsets.US_ASCII), other.base64.getBytes(StandardCharsets.US_ASCII));
  }

  @Override
  public int hashCode() {
    return 0; // as good as any, and says nothing of the key
  }

  @Override
  public String toString() {
    return "EncryptionKey[redacted]";
  }
}
