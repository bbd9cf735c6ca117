"""Fixtures for the emulator tests: one emulator on a loopback port, and a small HTTP helper."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from sidecar.emulator import AUTO_CREATE, Emulator, EmulatorConfig

from .helpers import BASIN, FIVE, HB_MAX, HB_MIN, S2


@pytest.fixture(scope="session")
async def emulator() -> AsyncIterator[Emulator]:
    # BASIN creates streams on first append or read; tests of S2's defaults create their own basins.
    config = EmulatorConfig(port=0, heartbeat_min=HB_MIN, heartbeat_max=HB_MAX, basins={BASIN: AUTO_CREATE})
    async with Emulator(config) as emu:
        yield emu


@pytest.fixture
async def s2(emulator: Emulator) -> AsyncIterator[S2]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        yield S2(http, emulator.url)


@pytest.fixture
def stream() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def five(s2: S2, stream: str) -> str:
    """A stream holding FIVE: seq 0-4, each record 10 metered bytes (8 + 2-byte body)."""
    await s2.append(stream, FIVE)
    return stream
