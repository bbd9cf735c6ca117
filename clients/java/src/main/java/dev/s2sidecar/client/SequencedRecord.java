package dev.s2sidecar.client;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * A record as stored in the stream: its position, timestamp (milliseconds), headers in append
 * order, and body. (Like any record with array components, two records compare equal only if
 * they share the arrays: compare {@code seqNum} instead.)
 *
 * <p>{@link #toString()} shows the body's length and its first {@value #BODY_PREVIEW} bytes, as
 * {@link Header} shows its bytes: {@code SequencedRecord[seqNum=0, timestamp=1700000000000,
 * headers=[], body=5 bytes "hello"]}.
 */
public record SequencedRecord(long seqNum, long timestamp, List<Header> headers, byte[] body) {
  /** How many of the body's bytes {@link #toString()} shows. */
  static final int BODY_PREVIEW = 64;

  public SequencedRecord {
    headers = List.copyOf(headers);
  }

  public String bodyUtf8() {
    return new String(body, StandardCharsets.UTF_8);
  }

  /** A command record (fence or trim): a single header with an empty name. */
  public boolean isCommand() {
    return headers.size() == 1 && headers.get(0).name().length == 0;
  }

  /**
   * S2's metered size, the unit of a {@code bytes} limit: 8 + 2 per header + header names and
   * values + body.
   */
  public long meteredBytes() {
    long size = 8L + 2L * headers.size() + body.length;
    for (Header h : headers) {
      size += h.name().length + h.value().length;
    }
    return size;
  }

  @Override
  public String toString() {
    return "SequencedRecord[seqNum=" + seqNum + ", timestamp=" + timestamp + ", headers=" + headers
        + ", body=" + body.length + " bytes " + Header.show(body, BODY_PREVIEW) + "]";
  }
}
