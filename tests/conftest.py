"""Shared fixtures: one emulator + sidecar pair for the session, and a fresh stream name per test.

With S2_SIDECAR_TEST_UPSTREAM=s2-lite the harnesses read from S2's own server instead of the
emulator (one s2-lite for the session; scripts/test-s2-lite runs that pass), and tests marked
`emulator_only` (they use the emulator's hooks) are for the emulator pass alone.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator

import pytest

from sidecar.testing import SidecarHarness
from tests.s2_lite import S2Lite

_names = itertools.count()
_s2_lite: S2Lite | None = None  # S2_SIDECAR_TEST_UPSTREAM=s2-lite: one s2-lite for the session


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator_only: needs the emulator's hooks (stats, faults, restarts) or timing S2 does not promise"
    )
    if os.environ.get("S2_SIDECAR_TEST_UPSTREAM", "emulator") == "s2-lite":
        global _s2_lite
        try:
            _s2_lite = S2Lite().__enter__()  # before any harness reads the variable below
        except RuntimeError as e:
            raise pytest.UsageError(str(e)) from None  # one line, no traceback
        os.environ["S2_SIDECAR_TEST_UPSTREAM_URL"] = _s2_lite.url


def pytest_unconfigure(config: pytest.Config) -> None:
    if _s2_lite is not None:
        _s2_lite.stop()


@pytest.fixture(scope="session")
async def harness() -> AsyncIterator[SidecarHarness]:
    async with SidecarHarness() as h:
        yield h


@pytest.fixture
def stream(request: pytest.FixtureRequest) -> str:
    """A stream name no other test uses."""
    return f"{request.node.name[:80]}-{os.getpid()}-{next(_names)}"
