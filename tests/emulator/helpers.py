"""Helpers for the emulator tests: plain-HTTP access and raw SSE / s2s readers.

Expected bytes are written out by hand in the tests, not produced with `sidecar.wire`, so that
a mistake shared by the emulator and the wire code cannot hide itself.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

BASIN = "testbasin1"
HB_MIN, HB_MAX = 0.2, 0.3  # heartbeat gaps for the shared emulator (seconds)


# Five records with client timestamps (far below the arrival time, so they are kept as given).
FIVE = [
    {"timestamp": 10, "body": "r0"},
    {"timestamp": 20, "body": "r1"},
    {"timestamp": 20, "body": "r2"},
    {"timestamp": 30, "body": "r3"},
    {"timestamp": 40, "body": "r4"},
]


SSE = {"Accept": "text/event-stream"}
S2S = {"Content-Type": "s2s/proto", "Accept-Encoding": "identity"}

# A catch-up batch of FIVE: no tail, as S2 sends it only on batches served live (lite/src/backend/read.rs).
FIVE_JSON = (
    '{"records":[{"seq_num":0,"timestamp":10,"body":"r0"},{"seq_num":1,"timestamp":20,"body":"r1"},'
    '{"seq_num":2,"timestamp":20,"body":"r2"},{"seq_num":3,"timestamp":30,"body":"r3"},'
    '{"seq_num":4,"timestamp":40,"body":"r4"}]}'
)
# s2s frame with ReadBatch{records: FIVE} (catch-up: no tail): 3-byte length 0x31, flag 0, then the fields
# SequencedRecord{seq_num, timestamp, body} (seq_num 0 is left out, as proto3 does).
FIVE_FRAME = (
    b"\x00\x00\x31\x00"
    + b"\x0a\x06\x10\x0a\x22\x02r0"
    + b"\x0a\x08\x08\x01\x10\x14\x22\x02r1"
    + b"\x0a\x08\x08\x02\x10\x14\x22\x02r2"
    + b"\x0a\x08\x08\x03\x10\x1e\x22\x02r3"
    + b"\x0a\x08\x08\x04\x10\x28\x22\x02r4"
)


class S2:
    """Requests against one emulator, in basin BASIN unless told otherwise."""

    def __init__(self, http: aiohttp.ClientSession, url: str, basin: str = BASIN) -> None:
        self.http = http
        self.url = url
        self.basin = basin

    def in_basin(self, basin: str) -> S2:
        """The same emulator, another basin."""
        return S2(self.http, self.url, basin)

    async def create_basin(self, config: dict[str, Any] | None = None) -> S2:
        """A new basin (S2's account API, `POST /v1/basins`), with S2's defaults unless `config` says."""
        name = f"basin-{uuid.uuid4().hex[:12]}"
        body: dict[str, Any] = {"basin": name} if config is None else {"basin": name, "config": config}
        async with self.http.post(f"{self.url}/v1/basins", json=body) as r:
            assert r.status == 201, await r.text()
        return self.in_basin(name)

    def path(self, stream: str, suffix: str = "") -> str:
        return f"{self.url}/v1/streams/{quote(stream, safe='')}{suffix}"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"s2-basin": self.basin, **(extra or {})}

    async def append(self, stream: str, records: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
        async with self.http.post(
            self.path(stream, "/records"), json={"records": records, **body}, headers=self.headers()
        ) as r:
            assert r.status == 200, await r.text()
            result: dict[str, Any] = await r.json()
            return result

    async def read(self, stream: str, params: str = "", headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """A one-shot JSON read: (status, parsed body)."""
        async with self.http.get(self.path(stream, f"/records?{params}"), headers=self.headers(headers)) as r:
            return r.status, await r.json()

    async def hook(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, f"{self.url}/_emulator/{path}", json=body) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def ensure_when_deleted(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    """`PUT` (ensure) a stream, waiting out a deletion still pending, as S2's clients must (S2 deletes
    in the background and answers `409 stream_deletion_pending` until it is done); the status."""
    for _ in range(200):
        async with http.put(url, json={}, headers=headers) as r:
            if r.status != 409 or (await r.json())["code"] != "stream_deletion_pending":
                return r.status
        await asyncio.sleep(0.01)
    raise AssertionError(f"{url}: still being deleted after 2 s")


async def until_gone(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, Any]:
    """`GET` a stream's config until its deletion ends: (status, body) of the first answer that is
    not `409 stream_deletion_pending`."""
    for _ in range(200):
        async with http.get(url, headers=headers) as r:
            body = await r.json()
        if (r.status, body.get("code")) != (409, "stream_deletion_pending"):
            return r.status, body
        await asyncio.sleep(0.01)
    raise AssertionError(f"{url}: still being deleted after 2 s")


class Events:
    """Reads SSE events off a response as raw text, each ending in its blank line."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.buf = b""

    async def next(self, timeout: float = 5.0) -> str:
        while b"\n\n" not in self.buf:
            chunk = await asyncio.wait_for(self.response.content.readany(), timeout)
            if not chunk:
                raise EOFError(f"stream ended; pending {self.buf!r}")
            self.buf += chunk
        event, _, self.buf = self.buf.partition(b"\n\n")
        return event.decode() + "\n\n"

    async def rest(self, timeout: float = 5.0) -> bytes:
        """Everything left until the body ends."""
        return self.buf + await asyncio.wait_for(self.response.content.read(), timeout)


class Frames:
    """Reads s2s frames (3-byte length, then flag and body) off a response, as raw bytes."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 5.0) -> bytes:
        prefix = await asyncio.wait_for(self.response.content.readexactly(3), timeout)
        rest = await asyncio.wait_for(self.response.content.readexactly(int.from_bytes(prefix, "big")), timeout)
        return prefix + rest

    async def at_end(self, timeout: float = 5.0) -> bool:
        return await asyncio.wait_for(self.response.content.read(), timeout) == b""


@dataclass(frozen=True)
class TLSFiles:
    """A test CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""

    cert: Path  # the certificate chain: EmulatorConfig.tls_cert, `emulator --tls-cert`
    key: Path  # EmulatorConfig.tls_key, `emulator --tls-key`
    ca: Path  # trust this (SSL_CERT_FILE, a CA-file flag, or `client_context()`)

    def client_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if alpn:
            context.set_alpn_protocols(alpn)
        return context


def make_tls(directory: Path) -> TLSFiles:
    """Write a fresh trustme CA and server certificate into `directory`."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(directory / "cert.pem", directory / "key.pem", directory / "ca.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(str(files.cert))
    cert.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    return files
