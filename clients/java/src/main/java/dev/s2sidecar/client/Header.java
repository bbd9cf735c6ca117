package dev.s2sidecar.client;

import java.nio.charset.StandardCharsets;

/**
 * A name/value pair on a record. A single header with an empty name marks a command record
 * (value "fence" or "trim"). The arrays are the client's own copies; do not modify them.
 */
public record Header(byte[] name, byte[] value) {
  public String nameUtf8() {
    return new String(name, StandardCharsets.UTF_8);
  }

  public String valueUtf8() {
    return new String(value, StandardCharsets.UTF_8);
  }
}
