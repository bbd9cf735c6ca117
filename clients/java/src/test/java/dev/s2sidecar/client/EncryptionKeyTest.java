package dev.s2sidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Base64;
import org.junit.jupiter.api.Test;

/** A key is sent as S2 takes it, and never shown: not by toString, nor by an exception. */
class EncryptionKeyTest {
  private static final byte[] RAW = new byte[32];
  private static final String B64 = Base64.getEncoder().encodeToString(RAW);

  @Test
  void bytesAreEncodedAndBase64IsSentAsItIs() {
    assertEquals(B64, EncryptionKey.of(RAW).metadata().get(EncryptionKey.HEADER));
    assertEquals(B64, EncryptionKey.ofBase64(B64).metadata().get(EncryptionKey.HEADER));
    assertEquals(EncryptionKey.of(RAW), EncryptionKey.ofBase64(B64));
    assertNotEquals(EncryptionKey.of(RAW), EncryptionKey.ofBase64("other"));
  }

  @Test
  void neitherTheKeyNorOptionsHoldingItShowIt() {
    var key = EncryptionKey.ofBase64(B64);
    assertEquals("EncryptionKey[redacted]", key.toString());
    var options = ReadOptions.from(ReadStart.seqNum(0)).encryptionKey(B64);
    assertTrue(options.toString().contains("EncryptionKey[redacted]"), options.toString());
    assertFalse(options.toString().contains(B64));
  }

  @Test
  void aStringGrpcCannotCarryIsRefusedWithoutShowingIt() {
    String secret = B64.substring(0, 40) + "é";
    var e = assertThrows(IllegalArgumentException.class, () -> EncryptionKey.ofBase64(secret));
    assertTrue(e.getMessage().contains("printable ASCII"));
    assertFalse(e.getMessage().contains(B64.substring(0, 40)));
    assertThrows(IllegalArgumentException.class, () -> S2SidecarClient.builder().encryptionKey(secret));
  }
}
