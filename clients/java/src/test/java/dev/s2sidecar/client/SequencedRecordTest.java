package dev.s2sidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class SequencedRecordTest {
  private static String printed(byte[] body) {
    return new SequencedRecord(7, 1700000000000L, List.of(), body).toString();
  }

  private static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void printsTheBodysLengthAndText() {
    var headers = List.of(new Header(utf8("k"), utf8("v")));
    assertEquals(
        "SequencedRecord[seqNum=7, timestamp=1700000000000, headers=[Header[name=\"k\", value=\"v\"]], body=5 bytes \"hello\"]",
        new SequencedRecord(7, 1700000000000L, headers, utf8("hello")).toString());
    assertEquals("SequencedRecord[seqNum=7, timestamp=1700000000000, headers=[], body=0 bytes \"\"]", printed(new byte[0]));
  }

  @Test
  void escapesTheBodySoItStaysOnOneLine() {
    assertEquals(
        "SequencedRecord[seqNum=7, timestamp=1700000000000, headers=[], body=11 bytes \"{\\\"a\\\":1}\\n\\t\\u0000\\\\\"]",
        printed(utf8("{\"a\":1}\n\t\u0000\\")));
  }

  @Test
  void printsOtherBytesAsHex() {
    assertEquals("SequencedRecord[seqNum=7, timestamp=1700000000000, headers=[], body=3 bytes 0x00ff80]",
        printed(new byte[] {0, (byte) 0xff, (byte) 0x80}));
  }

  @Test
  void aLongBodyIsCutAfterItsFirst64Bytes() {
    String a64 = "a".repeat(64);
    assertEquals("SequencedRecord[seqNum=7, timestamp=1700000000000, headers=[], body=1000 bytes \"" + a64 + "\"\u2026]",
        printed(utf8("a".repeat(1000))));
    // The cut splits "é" (2 bytes): the text stops before it instead of turning to hex.
    assertEquals("SequencedRecord[seqNum=7, timestamp=1700000000000, headers=[], body=66 bytes \"" + "a".repeat(63) + "\"\u2026]",
        printed(utf8("a".repeat(63) + "\u00e9b")));
    byte[] binary = new byte[100];
    binary[0] = (byte) 0xff;
    assertEquals("SequencedRecord[seqNum=7, timestamp=1700000000000, headers=[], body=100 bytes 0xff" + "00".repeat(63) + "\u2026]",
        printed(binary));
  }
}
