"""Shared fixtures: one emulator + sidecar pair for the session, and a fresh stream name per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator

import pytest

from sidecar.testing import SidecarHarness

_names = itertools.count()


@pytest.fixture(scope="session")
async def harness() -> AsyncIterator[SidecarHarness]:
    async with SidecarHarness() as h:
        yield h


@pytest.fixture
def stream(request: pytest.FixtureRequest) -> str:
    """A stream name no other test uses."""
    return f"{request.node.name[:80]}-{os.getpid()}-{next(_names)}"
