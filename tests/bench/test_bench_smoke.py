"""The benchmark's sections with tiny parameters: every expected row is there and its
figures are sane (positive, and the cache/single-flight/upstream counts mean what they say).
Not a performance test: nothing here depends on how fast the machine is."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.common import ROOT
from tests.bench.fanout import FanoutParams, format_fanout, run_fanout
from tests.bench.throughput import ThroughputParams, format_throughput, run_throughput
from tests.bench.unary import UnaryParams, format_unary, run_unary
from tests.bench.vs_sdk import CLIENT_SRC, VsSdkParams, format_vs_sdk, run_vs_sdk
from tests.emulator.test_s2_sdk import sdk_python


def positive(*values: float) -> bool:
    return all(not math.isnan(v) and v > 0 for v in values)


async def test_throughput_section() -> None:
    r = await run_throughput(ThroughputParams(records=3000, sizes=(100,), repeats=1, min_seconds=0.05))
    text = format_throughput(r)
    print(text)
    assert [row.what for row in r.rows] == [
        "ReadSession direct (aiohttp s2s)",
        "ReadSession sidecar",
        "ReadSession gRPC ceiling",
        "Read 1000/call direct",
        "Read 1000/call sidecar",
    ], text
    for row in r.rows:
        assert row.what in text
        assert positive(row.rate, row.direct, row.messages, row.cpu_us_per_krec), row
        assert 0 <= row.host_busy <= 100.5, row
    assert r.rows[0].rate == r.rows[0].direct and r.rows[1].direct == r.rows[0].rate, text


async def test_unary_section() -> None:
    p = UnaryParams(
        callers=4,
        seconds=0.2,
        warmup=0.05,
        sequential=20,
        repeats=1,
        lp_callers=4,
        lp_rate=20,
        lp_seconds=0.4,
        lp_warmup=0.15,
    )
    r = await run_unary(p)
    text = format_unary(r)
    print(text)
    by_name = {row.what.split(" (")[0].split(",")[0]: row for row in r.rows}
    assert len(r.rows) == 6, text
    for row in r.rows:
        assert row.what in text
        assert positive(row.rate, row.p50_ms, row.p99_ms, row.cpu_us_per_call), row
        assert row.p99_ms >= row.p50_ms, row
    assert by_name["CheckTail cached"].upstream_per_call == 0, text  # answered from memory
    assert by_name["CheckTail uncached"].upstream_per_call >= 0.9, text  # upstream every call
    assert positive(by_name["CheckTail cached"].ceiling), text
    assert [lp.what for lp in r.long_polls] == ["4 identical long-polls", "4 distinct long-polls"], text
    for lp in r.long_polls:
        assert lp.what in text
        assert positive(lp.answers, lp.p50_ms, lp.p99_ms, lp.upstream_per_append), lp


async def test_fanout_section() -> None:
    p = FanoutParams(followers=(2,), ceiling=(2,), window=0.6, repeats=1, settle=0.1, report_timeout=3.0)
    r = await run_fanout(p)
    text = format_fanout(r)
    print(text)
    assert [(row.server, row.followers) for row in r.rows] == [("sidecar", 2), ("gRPC ceiling", 2)], text
    for row in r.rows:
        assert row.upstream_sessions == 1, text  # two followers, one upstream session
        assert row.delivered > 0.9 and not row.problems, text
        assert positive(row.p50_ms, row.p99_ms, row.rss_mib, row.hwm_mib), row
        assert row.max_ms >= row.p99_ms >= row.p50_ms and row.sidecar_cpu >= 0, row


async def test_vs_sdk_section() -> None:
    p = VsSdkParams(
        records=3000, sizes=(100,), runs=1, sessions=20, repeats=1, min_seconds=0.1, callers=4, before_tree=None
    )
    r = await run_vs_sdk(p)
    text = format_vs_sdk(r)
    print(text)
    assert [row[0] for row in r.reads] == [100] and positive(*r.reads[0][1:]), text
    assert [row[0] for row in r.catchup] == [100] and positive(*r.catchup[0][1:]), text
    assert r.connections["http2"][:2] == (1, 20), text  # 20 sessions on one HTTP/2 connection
    assert r.connections["http2"][2] == 1, text  # the emulator saw that one connection too
    assert r.connections["http1"][:2] == (20, 20), text  # one connection per session
    assert len(r.emulator) == 2 and all(positive(b, a) for _, b, a in r.emulator), text
    for heading in ("s2-sdk", "http2/http1", "TCP connections", "after/before"):
        assert heading in text, text


@pytest.mark.parametrize(
    "extra",
    [(), ("--embedded", "--no-history-cache", "--before-src", str(CLIENT_SRC))],
    ids=["separate-emulator", "embedded-before"],
)
def test_client_vs_sdk_script(extra: tuple[str, ...], tmp_path: Path) -> None:
    env = {**os.environ, "S2_SDK_PYTHON": str(sdk_python())}
    args = ["--records", "3000", "--rounds", "2", "--profile", str(tmp_path), *extra]
    out = subprocess.run(
        [sys.executable, "-m", "tests.bench.client_vs_sdk", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    readers = ["s2-sdk", "client", *(["before"] if extra else [])]
    rates = re.findall(r"^  (\S+) +([\d,]+) rec/s", out.stdout, re.MULTILINE)
    assert [name for name, _ in rates] == readers * 2, out.stdout
    assert all(int(rate.replace(",", "")) > 0 for _, rate in rates), out.stdout
    assert re.search(r"^median client/s2-sdk over 2 rounds: \d+\.\d\dx$", out.stdout, re.MULTILINE), out.stdout
    assert (tmp_path / "client.prof").stat().st_size > 0
