"""The load script's code path, small: ~30 sessions and 10 unary callers for 8 s with faults,
against the emulator and the sidecar as separate processes. Nothing lost or repeated, no UNKNOWN
or INTERNAL, and after the clients leave no upstream session stays open and the sidecar's file
descriptors and threads are back to the baseline (idle pooled upstream connections aside)."""

from __future__ import annotations

import pytest

from tests.bench.load import LoadConfig, processes, report, run_load


@pytest.mark.slow
async def test_light_load_with_faults_loses_nothing_and_leaks_nothing() -> None:
    cfg = LoadConfig(sessions=30, unary=10, seconds=8, faults=True, streams=4, rate=200, prefill=1000, seed=4)
    async with processes() as procs:
        r = await run_load(cfg, procs)
    text = report(r)
    print(text)
    assert (r.lost, r.repeated, r.corrupt) == (0, 0, 0), text
    assert (r.bad_resume_points, r.tail_went_back) == (0, 0), text
    assert r.followers_caught_up == r.followers == 15, text
    assert r.bad_codes == 0, text
    assert r.calls["ReadSession", "OK"] > 30 and r.calls["Read", "OK"] > 10 and r.calls["CheckTail", "OK"] > 10, text
    assert sum(r.faults.values()) >= 6, text
    assert r.delivered_sessions > 0 and r.delivered_read > 0, text
    # No upstream session outlives its client.
    assert r.upstream_sessions_after == 0, text
    # Back to the baseline: everything but pooled keep-alive connections to the upstream (which
    # aiohttp keeps for reuse) is closed; the pool itself is bounded by the calls that ran at once.
    assert r.after.fds - r.after.upstream_conns <= r.before.fds - r.before.upstream_conns + 2, text
    concurrent_non_followers = cfg.unary + (cfg.sessions - cfg.sessions // 2)
    assert r.after.upstream_conns <= concurrent_non_followers + 2, text
    assert r.after.threads <= r.before.threads + 2, text
