"""Client-supplied encryption keys for S2's encrypted streams (docs/encryption.md).

A stream created in a basin with a `stream_cipher` is encrypted: appends and reads carry the key
in the `s2-encryption-key` header (base64 of 32 bytes), and S2 keeps none. A read's key comes from
the app (gRPC metadata of the same name) or from the sidecar's key files (`KeyFiles`).

An `EncryptionKey` is a secret like the access token: its `repr` shows only its `fingerprint`, an
HMAC-SHA256 of the key under a random salt drawn once per process, which names the key in the
read logic's shared structures (reads with different keys never share what they read) and
cannot be turned back into the key, nor compared across processes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.types import ReadScope
from sidecar.wire.names import basin_name_problem, stream_name_problem

HEADER = "s2-encryption-key"  # S2's header, and the gRPC metadata key apps send it in
KEY_BYTES = 32
MAX_KEY_CHARS = 44  # 32 bytes in padded base64: S2 refuses a longer header on any stream
STREAMS_FILE = "streams.json"  # in the key directory: per-stream keys (no basin name has a dot)

_SALT = secrets.token_bytes(32)  # per process: fingerprints mean nothing outside it


class InvalidKey(ValueError):
    """A key S2 would refuse: the message says what is wrong, never what the key is."""


@dataclass(frozen=True, slots=True)
class EncryptionKey:
    """One key as S2 takes it (`value`: standard padded base64 of 32 bytes). Equal keys have
    equal fingerprints; the value is never printed."""

    value: str = field(repr=False, compare=False)
    fingerprint: str

    @classmethod
    def parse(cls, text: str) -> EncryptionKey:
        """The key in `text` (surrounding whitespace dropped, as S2 does), checked as S2 checks
        it for an encrypted stream; raises `InvalidKey`."""
        value = text.strip()
        if not 1 <= len(value) <= MAX_KEY_CHARS:
            raise InvalidKey(
                f"must be {KEY_BYTES} bytes in standard padded base64 ({MAX_KEY_CHARS} characters), "
                f"got {len(value)} characters"
            )
        try:
            raw = binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError):
            raw = None
        if raw is None or base64.b64encode(raw).decode() != value:
            # S2 decodes canonical padded standard base64 only (no URL-safe alphabet, no stray bits).
            raise InvalidKey(f"is not standard padded base64 (a {KEY_BYTES}-byte key is {MAX_KEY_CHARS} characters)")
        if len(raw) != KEY_BYTES:
            raise InvalidKey(f"must decode to {KEY_BYTES} bytes, got {len(raw)}")
        return cls(value, fingerprint_of(value))


def scope_of(basin: str, stream: str, key: EncryptionKey | None) -> ReadScope:
    """Where the read logic keeps what reads of the stream with `key` share."""
    return (basin, stream, "" if key is None else key.fingerprint)


def fingerprint_of(value: str) -> str:
    """Names a key without revealing it: HMAC-SHA256 under this process's salt, 128 bits in hex."""
    return hmac.new(_SALT, value.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class KeyFiles:
    """The sidecar's own keys, read from a directory (a mounted Kubernetes Secret):

        DIR/<basin>        the key for every stream of the basin (basin names are valid file names
                           and Secret keys)
        DIR/streams.json   {"<basin>": {"<stream>": "<key>", ...}, ...}: per-stream keys, which win
                           over the basin's (stream names may hold any character, so they live
                           inside the file, not in file names)

    Entries whose names start with "." are skipped (Kubernetes' own `..data` links); anything else
    is an error, so a misnamed file is found at start and not when a read fails."""

    basins: Mapping[str, EncryptionKey] = field(default_factory=dict, repr=False)
    streams: Mapping[tuple[str, str], EncryptionKey] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.basins) + len(self.streams)

    def lookup(self, basin: str, stream: str) -> EncryptionKey | None:
        return self.streams.get((basin, stream)) or self.basins.get(basin)

    @classmethod
    def load(cls, directory: str) -> KeyFiles:
        """Read the directory; raises ValueError naming the file and what is wrong with it."""
        root = Path(directory)
        if not root.is_dir():
            raise ValueError("no such directory")
        basins: dict[str, EncryptionKey] = {}
        streams: dict[tuple[str, str], EncryptionKey] = {}
        for name in sorted(os.listdir(root)):
            path = root / name
            if name.startswith(".") or path.is_dir():
                continue
            if name == STREAMS_FILE:
                streams = _stream_keys(path)
                continue
            if problem := basin_name_problem(name):
                raise ValueError(f"{name!r}: a key file is named after its basin ({problem}), or is {STREAMS_FILE}")
            try:
                basins[name] = EncryptionKey.parse(path.read_text(encoding="utf-8"))
            except (InvalidKey, UnicodeDecodeError) as e:
                raise ValueError(f"{name}: the key {e}") from None
        return cls(basins, streams)


def _stream_keys(path: Path) -> dict[tuple[str, str], EncryptionKey]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{STREAMS_FILE}: not JSON") from None  # the parser's message may quote a key
    shape = f'{STREAMS_FILE}: must be {{"<basin>": {{"<stream>": "<base64 key>"}}}}'
    if not isinstance(doc, dict):
        raise ValueError(shape)
    keys: dict[tuple[str, str], EncryptionKey] = {}
    for basin, by_stream in doc.items():
        if problem := basin_name_problem(basin):
            raise ValueError(f"{STREAMS_FILE}: {basin!r}: {problem}")
        if not isinstance(by_stream, dict):
            raise ValueError(shape)
        for stream, value in by_stream.items():
            if problem := stream_name_problem(stream):
                raise ValueError(f"{STREAMS_FILE}: {basin}/{stream!r:.80}: {problem}")
            if not isinstance(value, str):
                raise ValueError(shape)
            try:
                keys[(basin, stream)] = EncryptionKey.parse(value)
            except InvalidKey as e:
                raise ValueError(f"{STREAMS_FILE}: {basin}/{stream!r:.80}: the key {e}") from None
    return keys
