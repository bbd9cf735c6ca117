"""S2's client-supplied encryption keys: a stream's `cipher`, the `s2-encryption-key` header, and
records sealed with real AEAD before they are stored.

As S2 does it (S2: docs/adr/csek.md; common/src/encryption.rs; storage/src/record/encryption.rs):

- A basin's `stream_cipher` (`aegis-256` or `aes-256-gcm`) is recorded as the `cipher` of each
  stream created in it afterwards, for the stream's lifetime.
- Appends and reads carry the key, base64, in `s2-encryption-key`. The header is parsed before the
  stream is looked at: 1 to 44 characters once trimmed, else `400 bad_header` even on a plain
  stream. Only a stream with a cipher resolves it (a plain stream ignores a well-formed key):
  missing, not base64, or not 32 bytes are `400 bad_header`. Tail checks take no key.
- Only envelope records (headers and body) are sealed; command records (fence, trim) stay in
  clear, so a read of commands alone needs a key but not the right one. Each record is
  `[format id][random nonce][ciphertext][tag]`, the plaintext being its headers and body, the
  associated data the stream's identity (basin and name), not its position. A wrong key fails the
  tag check: `400 decryption_failed` for a unary read, an error event or terminal frame in a
  session. An append with another key succeeds: S2 does not remember the key.
- Metered sizes stay those of the plaintext (S2 stores the logical metered size next to the sealed
  record), so limits and `bytes` bounds do not change with encryption.

Layout differences from S2's storage, which only this module sees: AEGIS-256 comes from libsodium
(PyNaCl), whose tag is 32 bytes where S2 uses 16; the associated data is SHA-256 over
basin, a zero byte and stream, where S2 hashes the same with its own function.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sidecar.errors import S2Error
from sidecar.wire.protobuf import encode_record_field, records_from_fields

KEY_HEADER = "s2-encryption-key"
KEY_BYTES = 32
MAX_KEY_HEADER_CHARS = 44  # 32 bytes in padded base64

# Format ids: the first byte of a sealed record names its algorithm and layout (S2's ids).
_AEGIS256 = 0x01
_AES256GCM = 0x02
_NONCE_BYTES = {_AEGIS256: nacl.bindings.crypto_aead_aegis256_NPUBBYTES, _AES256GCM: 12}
_FORMAT_IDS = {"aegis-256": _AEGIS256, "aes-256-gcm": _AES256GCM}


def decryption_failed() -> S2Error:
    # S2: lite/src/handlers/v1/error.rs, RecordDecryptionError::AuthenticationFailed.
    return S2Error(400, "decryption_failed", "record decryption failed")


def key_header(headers: Mapping[str, str]) -> str | None:
    """The `s2-encryption-key` header, trimmed, or None; `400 bad_header` when it is empty or over
    44 characters, whatever the stream (S2: common/src/encryption.rs `EncryptionKey::from_str`)."""
    value = headers.get(KEY_HEADER)
    if value is None:
        return None
    key = value.strip()
    if not 1 <= len(key) <= MAX_KEY_HEADER_CHARS:
        raise S2Error(
            400,
            "bad_header",
            f"Invalid header `{KEY_HEADER}`: invalid encryption key: key material length {len(key)} is out of range",
        )
    return key


def stream_aad(basin: str, stream: str) -> bytes:
    """The associated data of a stream's records: its identity (S2: lite/src/stream_id.rs)."""
    return hashlib.sha256(basin.encode() + b"\0" + stream.encode()).digest()


def _decode_key(cipher: str, key: str) -> bytes:
    """The key's 32 bytes: standard padded base64, canonical, as S2's base64ct decoder takes it."""
    try:
        raw = binascii.a2b_base64(key.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = None
    if raw is None or base64.b64encode(raw).decode() != key:
        raise S2Error(400, "bad_header", f"invalid encryption key for stream cipher '{cipher}': invalid base64")
    if len(raw) != KEY_BYTES:
        raise S2Error(400, "bad_header", f"invalid encryption key length for stream cipher '{cipher}': {len(raw)}")
    return raw


@dataclass(frozen=True, slots=True)
class RecordCipher:
    """A stream's cipher with the key of one request: seals records on append, opens them on read."""

    algorithm: str
    key: bytes
    aad: bytes

    def seal(self, plaintext: bytes) -> bytes:
        format_id = _FORMAT_IDS[self.algorithm]
        nonce = os.urandom(_NONCE_BYTES[format_id])
        if format_id == _AEGIS256:
            sealed = nacl.bindings.crypto_aead_aegis256_encrypt(plaintext, self.aad, nonce, self.key)
        else:
            sealed = AESGCM(self.key).encrypt(nonce, plaintext, self.aad)
        return bytes([format_id]) + nonce + sealed

    def open(self, sealed: bytes) -> bytes:
        """The plaintext, or `400 decryption_failed` when the key (or the data) is not the one sealed."""
        format_id = sealed[0] if sealed else None
        if format_id != _FORMAT_IDS[self.algorithm]:
            # A record sealed otherwise than the stream's cipher: S2 calls it a storage error.
            raise S2Error(500, "storage", "record encryption algorithm mismatch")
        n = 1 + _NONCE_BYTES[format_id]
        nonce, payload = sealed[1:n], sealed[n:]
        try:
            if format_id == _AEGIS256:
                return bytes(nacl.bindings.crypto_aead_aegis256_decrypt(payload, self.aad, nonce, self.key))
            return AESGCM(self.key).decrypt(nonce, payload, self.aad)
        except (nacl.exceptions.CryptoError, InvalidTag):
            raise decryption_failed() from None

    def seal_field(self, seq_num: int, timestamp: int, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bytes:
        """An envelope record as stored: position in clear, headers and body sealed into the body."""
        return encode_record_field(seq_num, timestamp, (), self.seal(encode_record_field(0, 0, headers, body)))

    def open_fields(self, fields: Sequence[bytes]) -> list[bytes]:
        """Stored record fields as readers get them. A stored field with headers is a command
        record (one header with an empty name), kept in clear; one without is sealed."""
        out = []
        for field, record in zip(fields, records_from_fields(fields), strict=True):
            if record.headers:
                out.append(field)
                continue
            (envelope,) = records_from_fields([self.open(record.body)])
            out.append(encode_record_field(record.seq_num, record.timestamp, envelope.headers, envelope.body))
        return out


def resolve(cipher: str | None, key: str | None, aad: bytes) -> RecordCipher | None:
    """What a stream with `cipher` needs for a request that sent `key`: None for a plain stream
    (any key ignored), else the cipher, or S2's `400 bad_header` (S2: common/src/encryption.rs
    `EncryptionSpec::resolve`; lite/src/handlers/v1/error.rs maps its errors to bad_header)."""
    if cipher is None:
        return None
    if key is None:
        raise S2Error(400, "bad_header", f"missing encryption key for stream cipher '{cipher}'")
    return RecordCipher(cipher, _decode_key(cipher, key), aad)
