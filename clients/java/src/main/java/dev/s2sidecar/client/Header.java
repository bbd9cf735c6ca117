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
    try {
      String text = StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(bytes))
          .toString();
      return "\"" + text.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    } catch (CharacterCodingException e) {
      return "0x" + HexFormat.of().formatHex(bytes);
    }
  }
}
