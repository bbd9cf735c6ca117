"""The Prometheus registry (`sidecar/prometheus.py`), its text rendering parsed back, the sidecar's
metric set on it, and `/metrics` on a real AdminServer."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from sidecar.admin import AdminServer, UpstreamProbe
from sidecar.metrics import CONTENT_TYPE, LATENCY_BUCKETS, Metrics
from sidecar.prometheus import Counter, Registry

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], v)


def parse(text: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, dict[str, str], float]]]:
    """(name -> (type, help), samples) from the text format; fails on any line it does not expect."""
    assert text.endswith("\n")
    meta: dict[str, list[str]] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            meta.setdefault(name, ["", ""])[1] = help_
        elif line.startswith("# TYPE "):
            name, _, type_ = line[7:].partition(" ")
            assert type_ in ("counter", "gauge", "histogram")
            meta.setdefault(name, ["", ""])[0] = type_
        else:
            m = _SAMPLE.match(line)
            assert m, line
            labels: dict[str, str] = {}
            raw = m.group(2) or ""
            pos = 0
            while pos < len(raw):
                lm = _LABEL.match(raw, pos)
                assert lm, raw[pos:]
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
            value = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(m.group(3)) or float(m.group(3))
            base = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
            assert m.group(1) in meta or base in meta, f"sample before its TYPE: {line}"
            samples.append((m.group(1), labels, value))
    return {k: (v[0], v[1]) for k, v in meta.items()}, samples


def test_counter_gauge_and_escaping() -> None:
    r = Registry()
    c = r.counter("t_requests_total", 'Help with \\ and\nnewline and "quotes".', ("kind", "status"))
    c.labels("read", "200").inc()
    c.labels("read", "200").inc(2)
    c.labels('we"ird\\va\nlue', "error").inc()
    g = r.gauge("t_open", "Open things.")
    g.inc()
    g.inc()
    g.dec()
    calls: list[int] = []

    def in_use() -> float:
        calls.append(1)
        return 7

    cb = r.gauge("t_pool_in_use", "Callback gauge.", ("pool",))
    cb.labels("session").set_function(in_use)
    cb.labels("broken").set_function(lambda: 1 / 0)
    assert calls == []  # evaluated at scrape time only
    meta, samples = parse(r.render())
    assert calls == [1]
    assert meta["t_requests_total"] == ("counter", 'Help with \\\\ and\\nnewline and "quotes".')
    assert meta["t_open"][0] == "gauge"
    assert ("t_requests_total", {"kind": "read", "status": "200"}, 3.0) in samples
    assert ("t_requests_total", {"kind": 'we"ird\\va\nlue', "status": "error"}, 1.0) in samples
    assert ("t_open", {}, 1.0) in samples
    assert ("t_pool_in_use", {"pool": "session"}, 7.0) in samples
    assert not any(labels.get("pool") == "broken" for _, labels, _ in samples)


def test_histogram_buckets_cumulative() -> None:
    r = Registry()
    h = r.histogram("t_duration_seconds", "Latency.", ("method",), buckets=LATENCY_BUCKETS)
    observations = [0.0001, 0.0005, 0.003, 0.003, 0.2, 1.0, 59.0, 120.0]
    for v in observations:
        h.labels("Read").observe(v)
    _, samples = parse(r.render())
    buckets = [(labels["le"], v) for name, labels, v in samples if name == "t_duration_seconds_bucket"]
    assert [le for le, _ in buckets] == [repr(b) for b in LATENCY_BUCKETS] + ["+Inf"]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)  # cumulative
    for le, v in buckets:
        bound = math.inf if le == "+Inf" else float(le)
        assert v == sum(1 for o in observations if o <= bound), le
    [count] = [v for name, _, v in samples if name == "t_duration_seconds_count"]
    [total] = [v for name, _, v in samples if name == "t_duration_seconds_sum"]
    assert count == len(observations) == counts[-1]
    assert total == pytest.approx(sum(observations))
    assert all(labels["method"] == "Read" for _, labels, _ in samples)


def test_misuse_is_refused() -> None:
    r = Registry()
    c = r.counter("t_total", "x", ("a",))
    with pytest.raises(ValueError):
        c.labels("1", "2")
    with pytest.raises(ValueError):
        c.labels("1").inc(-1)
    with pytest.raises(ValueError):
        r.counter("t_total", "again")
    with pytest.raises(ValueError):
        r.gauge("bad-name", "x")
    with pytest.raises(ValueError):
        r.histogram("t_h", "x", ("le",), buckets=(1.0,))


def test_series_limit_guards_cardinality() -> None:
    r = Registry()
    c = Counter("t_total", "x", ("a",), max_series=2)
    r._add(c)
    for i in range(5):
        c.labels(str(i)).inc()
    _, samples = parse(r.render())
    assert len(samples) == 2


def test_sidecar_metric_set_renders() -> None:
    m = Metrics()
    m.rpcs.labels("Read", "OK").inc()
    m.rpc_duration.labels("Read").observe(0.002)
    m.upstream_requests.labels("read", "200").inc()
    m.upstream_requests.labels("session", "timeout").inc()
    m.upstream_duration.labels("tail").observe(0.01)
    m.upstream_retries.labels("read", "status_503").inc()
    m.session_reconnects.labels("heartbeat").inc()
    m.sessions_open.inc()
    m.shared_session_subscribers.set(3)
    m.tail_cache.labels("hit").inc()
    m.upstream_connections_in_use.labels("unary").set_function(lambda: 2)
    m.upstream_connections_limit.labels("unary").set(100)
    m.records_sent.labels("ReadSession").inc(10)
    m.bytes_sent.labels("ReadSession").inc(1234)
    meta, samples = parse(m.render())
    assert all(name.startswith(("s2_sidecar_", "process_", "python_")) for name in meta)
    assert meta["s2_sidecar_rpc_duration_seconds"][0] == "histogram"
    assert meta["s2_sidecar_rpcs_total"][0] == "counter"
    assert meta["s2_sidecar_sessions_open"][0] == "gauge"
    names = {name for name, _, _ in samples}
    assert "s2_sidecar_upstream_request_duration_seconds_bucket" in names
    assert ("s2_sidecar_upstream_connections_in_use", {"pool": "unary"}, 2.0) in samples
    [info] = [labels for name, labels, _ in samples if name == "s2_sidecar_info"]
    assert info["version"]


@pytest.fixture
async def admin() -> AsyncIterator[tuple[AdminServer, Metrics]]:
    metrics = Metrics()
    server = AdminServer("127.0.0.1:0", serving=lambda: True, probe=UpstreamProbe("http://127.0.0.1:1"),
                         metrics=metrics)  # fmt: skip
    await server.start()
    yield server, metrics
    await server.stop()


async def test_admin_serves_metrics(admin: tuple[AdminServer, Metrics]) -> None:
    server, metrics = admin
    metrics.rpcs.labels("CheckTail", "NOT_FOUND").inc()
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == CONTENT_TYPE
            _, samples = parse(await resp.text())
        assert ("s2_sidecar_rpcs_total", {"method": "CheckTail", "code": "NOT_FOUND"}, 1.0) in samples
        async with http.get(server.url + "/healthz") as resp:
            assert (resp.status, await resp.text()) == (200, "ok\n")


async def test_admin_without_metrics_has_no_endpoint() -> None:
    server = AdminServer("127.0.0.1:0", serving=lambda: True, probe=UpstreamProbe("http://127.0.0.1:1"))
    await server.start()
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as resp:
            assert resp.status == 404
    finally:
        await server.stop()


# -- process_* and python_*, as prometheus_client exports them ----------------------------------

RUNTIME_FAMILIES = {
    "process_virtual_memory_bytes": ("gauge", "Virtual memory size in bytes."),
    "process_resident_memory_bytes": ("gauge", "Resident memory size in bytes."),
    "process_start_time_seconds": ("gauge", "Start time of the process since unix epoch in seconds."),
    "process_cpu_seconds_total": ("counter", "Total user and system CPU time spent in seconds."),
    "process_open_fds": ("gauge", "Number of open file descriptors."),
    "process_max_fds": ("gauge", "Maximum number of open file descriptors."),
    "python_gc_objects_collected_total": ("counter", "Objects collected during gc"),
    "python_gc_objects_uncollectable_total": ("counter", "Uncollectable objects found during GC"),
    "python_gc_collections_total": ("counter", "Number of times this generation was collected"),
    "python_info": ("gauge", "Python platform information"),
}


def runtime_checks(
    meta: dict[str, tuple[str, str]], samples: list[tuple[str, dict[str, str], float]], *, started_after: float
) -> None:
    """The families with prometheus_client's types and help texts, and plausible values for a
    process that started after `started_after` (unix time) and is scraped now."""
    import platform
    import time

    for name, want in RUNTIME_FAMILIES.items():
        assert meta.get(name) == want, name
    one = {name: value for name, labels, value in samples if not labels}
    assert one["process_resident_memory_bytes"] > 10 * 1024 * 1024  # a Python process with grpc loaded
    assert one["process_virtual_memory_bytes"] >= one["process_resident_memory_bytes"]
    assert 3 <= one["process_open_fds"] <= one["process_max_fds"]
    assert one["process_cpu_seconds_total"] > 0
    # /proc's boot time has whole seconds and start ticks 1/100 s: allow a second either side.
    assert started_after - 1 <= one["process_start_time_seconds"] <= time.time() + 1
    gens = {labels["generation"]: v for name, labels, v in samples if name == "python_gc_collections_total"}
    assert set(gens) == {"0", "1", "2"} and gens["0"] > 0  # importing grpc alone runs generation 0
    for name in ("python_gc_objects_collected_total", "python_gc_objects_uncollectable_total"):
        assert {labels["generation"] for n, labels, _ in samples if n == name} == {"0", "1", "2"}
    [info] = [labels for name, labels, _ in samples if name == "python_info"]
    major, minor, patchlevel = platform.python_version_tuple()
    assert info == {
        "implementation": platform.python_implementation(),
        "major": major,
        "minor": minor,
        "patchlevel": patchlevel,
        "version": platform.python_version(),
    }


def test_runtime_families_describe_this_process() -> None:
    import gc
    import os
    import resource

    meta, samples = parse(Metrics().render())
    runtime_checks(meta, samples, started_after=0)
    one = {name: value for name, labels, value in samples if not labels}
    # Against what the process can tell about itself another way.
    assert one["process_max_fds"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert one["process_resident_memory_bytes"] <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert one["process_cpu_seconds_total"] <= sum(os.times()[:2]) + 0.02
    assert abs(one["process_open_fds"] - len(os.listdir("/proc/self/fd"))) <= 1
    collected = {labels["generation"]: v for n, labels, v in samples if n == "python_gc_collections_total"}
    assert collected["2"] <= gc.get_stats()[2]["collections"]
    # Metrics(runtime=False): only the sidecar's own families.
    assert all(name.startswith("s2_sidecar_") for name in parse(Metrics(runtime=False).render())[0])


def test_expositions_fail_alone() -> None:
    r = Registry()
    r.counter("t_total", "x").inc()

    def broken() -> str:
        raise OSError("no /proc here")

    r.exposition("broken", broken)
    r.exposition("ok", lambda: "# HELP t_up Up.\n# TYPE t_up gauge\nt_up 1.0\n")
    meta, samples = parse(r.render())
    assert set(meta) == {"t_total", "t_up"}
    assert ("t_up", {}, 1.0) in samples


async def test_metrics_of_a_sidecar_process() -> None:
    """`s2-sidecar` as users run it: its /metrics describes that process, not this one."""
    import os
    import time

    from sidecar.testing import SidecarProcess, free_port

    before = time.time()
    admin_port = free_port()
    async with SidecarProcess("--admin-listen", f"127.0.0.1:{admin_port}") as sc:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{admin_port}/metrics") as resp:
            assert resp.status == 200
            meta, samples = parse(await resp.text())
        runtime_checks(meta, samples, started_after=before)
        one = {name: value for name, labels, value in samples if not labels}
        # Counted during the scrape: its own connection and the directory listing are open then.
        assert abs(one["process_open_fds"] - len(os.listdir(f"/proc/{sc.proc.pid}/fd"))) <= 3
        assert one["s2_sidecar_upstream_up"] == 1  # the embedded emulator, probed at start


# -- what sidecar/prometheus.py relies on from prometheus_client ---------------------------------


def test_prometheus_client_writes_the_format_we_serve() -> None:
    """`generate_latest` is what prometheus_client itself answers a 0.0.4 scrape with, under the
    content type `/metrics` sends: if it changed format, the appended families would not match."""
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest

    assert choose_encoder("text/plain; version=0.0.4") == (generate_latest, CONTENT_TYPE_PLAIN_0_0_4)
    assert CONTENT_TYPE_PLAIN_0_0_4 == CONTENT_TYPE


def test_runtime_families_are_per_registry() -> None:
    """Each registry has its own collectors: two in one process (the sidecar's and the injector's,
    or tests') each render the runtime families once, and prometheus_client's process-wide
    `REGISTRY` is left as it was."""
    from prometheus_client import REGISTRY

    def global_samples() -> list[str]:
        return sorted(s.name for family in REGISTRY.collect() for s in family.samples)

    before = global_samples()
    for text in [Metrics().render(), Metrics().render()]:
        meta, _ = parse(text)
        assert set(RUNTIME_FAMILIES) <= set(meta)
        assert all(text.count(f"# TYPE {name} ") == 1 for name in RUNTIME_FAMILIES), text
    assert global_samples() == before
