"""Whole answers compressed as S2 compresses them: gzip or zstd by `Accept-Encoding`, from 1 KiB;
sessions never (S2: lite/src/handlers/v1/mod.rs, tower-http's CompressionLayer with SizeAbove(1024)
and neither text/event-stream nor s2s/proto)."""

from __future__ import annotations

import gzip
import json

import pytest
import zstandard

from sidecar.emulator.output import reply_coding

from .helpers import S2, SSE

BIG = [{"timestamp": 10, "body": "x" * 200} for _ in range(10)]  # ~2 KiB as JSON


async def raw_read(s2: S2, stream: str, params: str, accept_encoding: str) -> tuple[int, dict[str, str], bytes]:
    headers = s2.headers({"Accept-Encoding": accept_encoding})
    async with s2.http.get(s2.path(stream, f"/records?{params}"), headers=headers, auto_decompress=False) as r:
        return r.status, dict(r.headers), await r.read()


@pytest.mark.parametrize(
    ("accept_encoding", "coding"),
    [
        ("gzip", "gzip"),
        ("zstd", "zstd"),
        ("gzip, zstd", "zstd"),  # equal q: zstd first
        ("zstd;q=0.5, gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("*", "zstd"),
        ("gzip;q=0, *;q=0.1", "zstd"),
        ("br, deflate", "identity"),  # nothing S2 speaks
        ("identity", "identity"),
        ("zstd;q=bad", "identity"),  # an unreadable q drops the entry
        ("", "identity"),
    ],
)
def test_the_coding_chosen_is_tower_https(accept_encoding: str, coding: str) -> None:
    assert reply_coding(accept_encoding) == coding


async def test_unary_reads_of_a_kib_or_more_are_compressed(s2: S2, stream: str) -> None:
    await s2.append(stream, BIG)
    status, headers, body = await raw_read(s2, stream, "seq_num=0", "gzip")
    assert (status, headers["Content-Encoding"], headers["Vary"]) == (200, "gzip", "accept-encoding")
    assert len(json.loads(gzip.decompress(body))["records"]) == 10
    _, headers, body = await raw_read(s2, stream, "seq_num=0", "zstd")
    assert headers["Content-Encoding"] == "zstd"
    assert len(json.loads(zstandard.ZstdDecompressor().decompress(body))["records"]) == 10
    _, headers, body = await raw_read(s2, stream, "seq_num=0", "identity")
    assert "Content-Encoding" not in headers and len(json.loads(body)["records"]) == 10
    _, headers, body = await raw_read(s2, stream, "seq_num=0&count=1", "gzip")  # under 1 KiB
    assert "Content-Encoding" not in headers and "Vary" not in headers


async def test_sessions_are_not_compressed(s2: S2, stream: str) -> None:
    await s2.append(stream, BIG)
    headers = s2.headers({**SSE, "Accept-Encoding": "gzip, zstd"})
    async with s2.http.get(s2.path(stream, "/records?seq_num=0&count=10"), headers=headers, auto_decompress=False) as r:
        assert "Content-Encoding" not in r.headers
        assert (await r.read()).startswith(b"event: batch")
