"""The Python client's sessions across real sidecar restarts (tests/clients/restarts.py): the async
client in the example driver `clients/python/examples/restart_reader.py`, and the sync client
through its `--sync` mode."""

from __future__ import annotations

import sys

import pytest

from tests.clients import restarts
from tests.clients.conftest import ROOT

DRIVER = ROOT / "clients" / "python" / "examples" / "restart_reader.py"


def driver(*extra: str) -> restarts.DriverCmd:
    return restarts.driver_cmd(sys.executable, str(DRIVER), *extra)


@pytest.mark.timeout(600)
async def test_python_catch_up_and_follow_across_sidecar_restarts() -> None:
    await restarts.catch_up_and_follow_across_restarts(driver())


async def test_python_missing_stream_fails_at_once() -> None:
    await restarts.missing_stream_fails_at_once(driver())


@pytest.mark.timeout(600)
async def test_python_sync_catch_up_and_follow_across_sidecar_restarts() -> None:
    await restarts.catch_up_and_follow_across_restarts(driver("--sync"), records=30_000, min_catch_up_cuts=2)


@pytest.mark.parametrize("mode", [(), ("--sync",)], ids=["async", "sync"])
async def test_python_session_keeps_its_key_across_sidecar_restarts(mode: tuple[str, ...]) -> None:
    await restarts.encrypted_session_across_restarts(driver(*mode))
