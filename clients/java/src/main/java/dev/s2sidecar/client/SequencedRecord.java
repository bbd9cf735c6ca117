package dev.s2sidecar.client;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * A record as stored in the stream: its position, timestamp (milliseconds), headers in append
 * order, and body. (Like any record with array components, two records compare equal only if
 * they share the arrays: compare {@code seqNum} instead.)
 */
public record SequencedRecord(long seqNum, long timestamp, List<Header> headers, byte[] body) {
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
}
