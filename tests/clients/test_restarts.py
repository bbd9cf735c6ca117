"""The restart harness itself (tests/clients/restarts.py): it must catch a client that does not
resume, and accept a missing stream's fast NOT_FOUND. Each client's own restart tests live with it."""

from __future__ import annotations

import sys

import pytest

from tests.clients import restarts
from tests.clients.conftest import ROOT

RAW = ROOT / "tests" / "clients" / "drivers" / "raw_reader.py"


raw = restarts.driver_cmd(sys.executable, str(RAW))


async def test_a_client_that_does_not_resume_fails_the_catch_up_test() -> None:
    with pytest.raises(AssertionError, match="driver exited 1"):
        await restarts.catch_up_across_restarts(raw, records=20_000)


async def test_a_client_that_does_not_resume_fails_the_follow_test() -> None:
    with pytest.raises(AssertionError, match="driver exited 1"):
        await restarts.follow_across_restarts(raw)


async def test_a_missing_stream_is_reported_by_the_raw_driver() -> None:
    await restarts.missing_stream_fails_at_once(raw)


def test_exactly_once_names_what_was_lost_and_repeated() -> None:
    good = [(i, restarts.body(i)) for i in range(5)]
    restarts.assert_exactly_once(good, 5)
    with pytest.raises(AssertionError, match=r"1 lost .*first \[2\]"):
        restarts.assert_exactly_once([good[0], good[1], good[3], good[4]], 5)
    with pytest.raises(AssertionError, match=r"1 repeated .*first \[1\]"):
        restarts.assert_exactly_once([good[0], good[1], good[1], good[2], good[3], good[4]], 5)
    with pytest.raises(AssertionError, match="wrong body"):
        restarts.assert_exactly_once([*good[:4], (4, "r4-")], 5)
