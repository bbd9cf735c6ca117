"""The emulator's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8080  # 0 = pick a free port
    data_dir: Path | None = None  # None = in memory; else the SQLite file emulator.sqlite3 in this directory
    require_token: str | None = None  # None = accept any bearer token, or none
    heartbeat_min: float = 5.0  # seconds; S2 sends heartbeats at random 5-15 s gaps
    heartbeat_max: float = 15.0
    # Basins created at start (name -> S2 `BasinConfig` JSON) unless they already exist (--data-dir).
    # Like S2, the emulator has no basins otherwise: create them here or with `POST /v1/basins`.
    basins: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    # TLS (both or neither): serve https, offering HTTP/2 and HTTP/1.1 by ALPN. Without them the
    # port serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c) in clear text.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: how many streams (sessions, calls) one connection may
    # carry at once; lower it to test a client that opens more connections.
    h2_max_concurrent_streams: int = 1000
    # Seconds a deletion takes after its 202: S2 deletes basins and streams in the background, and
    # until then lists them with `deleted_at` and answers `409 *_deletion_pending` (s2-lite 0.43.4
    # takes ~20 ms for an empty stream on this machine). 0 = gone before the 202.
    deletion_delay: float = 0.02
    # How an open read of a stream that is deleted ends. True (S2's way, as s2-lite 0.43.4): a
    # session that delivered every record gets the deletion's trim command record (header
    # ("", "trim"), body eight 0xff bytes) as a live batch, then `503 unavailable` "streamer
    # missing in action" (SSE error event, s2s terminal frame); a long poll answers the trim
    # record (S2: lite/src/backend/streams.rs `delete_stream`, a terminal trim, then the
    # streamer's follow channel closes: read.rs `StreamerMissingInActionError`).
    # False: at once, `404 stream_not_found` (the emulator before it followed s2-lite here).
    deletion_ends_reads_as_s2_lite: bool = True
