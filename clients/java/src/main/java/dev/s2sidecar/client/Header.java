package dev.s2sidecar.client;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * A name/value pair on a record. A single header with an empty name marks a command record
 * (value "fence" or "trim"). The arrays are the client's own copies; do not modify them.
 *
 * <p>Two headers are equal when their names and values hold the same bytes, and {@link
 * #toString()} shows them: {@code Header[name="content-type", value="json"]}, quoted UTF-8 where
 * the bytes are valid UTF-8 and hex ({@code 0x00ff}) where they are not.
 */
public record Header(byte[] name, byte[] value) {
  public String nameUtf8() {
    return new String(name, StandardCharsets.UTF_8);
  }

  public String valueUtf8() {
    return new String(value, StandardCharsets.UTF_8);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Header h && Arrays.equals(name, h.name) && Arrays.equals(value, h.value);
  }

  @Override
  public int hashCode() {
    return 31 * Arrays.hashCode(name) + Arrays.hashCode(value);
  }

  @Override
  public String toString() {
    return "Header[name=" + show(name) + ", value=" + show(value) + "]";
  }

  /** Quoted UTF-8 text when {@code bytes} are valid UTF-8, else {@code 0x} and their hex. */
  static String show(byte[] bytes) {
    return show(bytes, bytes.length);
  }

  /**
   * {@link #show(byte[])} of the first {@code max} bytes, followed by {@code …} when there are
   * more. A UTF-8 character the cut splits is left out of the quoted text rather than making it hex.
   * Quotes, backslashes and control characters are escaped, so the text stays on one line.
   */
  static String show(byte[] bytes, int max) {
    int shown = Math.min(bytes.length, max);
    String more = shown < bytes.length ? "\u2026" : "";
    // A cut inside a character leaves at most 3 of its bytes: try dropping them.
    int lowest = shown < bytes.length ? Math.max(0, shown - 3) : shown;
    for (int end = shown; end >= lowest; end--) {
      try {
        String text = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT)
            .decode(ByteBuffer.wrap(bytes, 0, end))
            .toString();
        return "\"" + escape(text) + "\"" + more;
      } catch (CharacterCodingException e) {
        // not UTF-8 up to end
      }
    }
    return "0x" + HexFormat.of().formatHex(bytes, 0, shown) + more;
  }

  private static String escape(String text) {
    StringBuilder out = new StringBuilder(text.length() + 2);
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> {
          if (c < 0x20 || c == 0x7f) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
        }
      }
    }
    return out.toString();
  }
}
