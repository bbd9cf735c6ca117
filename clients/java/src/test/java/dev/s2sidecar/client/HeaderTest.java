package dev.s2sidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class HeaderTest {
  private static Header header(String name, String value) {
    return new Header(name.getBytes(StandardCharsets.UTF_8), value.getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void printsUtf8QuotedAndOtherBytesAsHex() {
    assertEquals("Header[name=\"content-type\", value=\"json\"]", header("content-type", "json").toString());
    assertEquals("Header[name=\"\", value=\"fence\"]", header("", "fence").toString());
    assertEquals("Header[name=\"k\", value=\"caf\u00e9 \\\"x\\\"\"]", header("k", "caf\u00e9 \"x\"").toString());
    assertEquals("Header[name=\"bin\", value=0x00ff80]",
        new Header("bin".getBytes(StandardCharsets.UTF_8), new byte[] {0, (byte) 0xff, (byte) 0x80}).toString());
    assertEquals("Header[name=\"k\", value=\"a\\nb\\u0001\"]", header("k", "a\nb\u0001").toString());
  }

  @Test
  void equalsAndHashCodeCompareContent() {
    assertEquals(header("k", "v"), header("k", "v"));
    assertEquals(header("k", "v").hashCode(), header("k", "v").hashCode());
    assertNotEquals(header("k", "v"), header("k", "w"));
    assertNotEquals(header("k", "v"), header("kv", ""));
  }
}
