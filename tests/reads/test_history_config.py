"""The history cache's settings: defaults, the 0 that turns it off, and one line on a bad value."""

from __future__ import annotations

import pytest

from sidecar.config import Config
from tests.test_cli import run_cli


def test_the_cache_is_on_by_default_with_a_staleness_bound() -> None:
    assert Config().history_cache_bytes == 256 * 1024 * 1024
    assert 0 < Config().history_cache_max_age <= 10


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"S2_SIDECAR_HISTORY_CACHE_BYTES": "-1"},
         "S2_SIDECAR_HISTORY_CACHE_BYTES='-1' (or flag --history-cache-bytes): must not be negative (0 turns the "
         "cache off); for example 268435456 (256 MiB), or 0 to turn it off"),
        ({"S2_SIDECAR_HISTORY_CACHE_BYTES": "lots"}, "S2_SIDECAR_HISTORY_CACHE_BYTES='lots'"),
        ({"S2_SIDECAR_HISTORY_CACHE_MAX_AGE": "0"},
         "S2_SIDECAR_HISTORY_CACHE_MAX_AGE='0' (or flag --history-cache-max-age): must be positive; for example 30"),
    ],
)  # fmt: skip
def test_a_bad_value_stops_with_one_line(
    env: dict[str, str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = run_cli([], env, capsys)
    assert err.startswith("s2-sidecar: invalid ") and err.count("\n") <= 1
    assert expected in err
