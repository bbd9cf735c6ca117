"""The one classifier of errors (`reason_token`): every label it can give, and the span
`error.type` beside it."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.errors import (
    ConnectFailed,
    DeadlineExceeded,
    InvalidRequest,
    PoolExhausted,
    ProtocolError,
    RangeNotSatisfiable,
    RetriesStopped,
    S2Error,
    TransportError,
    UpstreamTimeout,
)
from sidecar.telemetry import error_type, reason_token
from sidecar.types import StreamPosition

LABELS = [
    (S2Error(503, "unavailable", "try later"), "unavailable"),
    (S2Error(409, "transaction_conflict", "again"), "transaction_conflict"),
    (S2Error(500, "x" * 41, "a code too long for a label"), "http_500"),
    (RangeNotSatisfiable(StreamPosition(5, 0)), "range_not_satisfiable"),
    (ProtocolError("not s2s"), "protocol"),
    (ConnectFailed("refused"), "connect"),
    (UpstreamTimeout("no answer"), "timeout"),
    (TransportError("reset"), "disconnected"),
    (RuntimeError("no transport names it"), "disconnected"),
    (PoolExhausted(5, "--session-connections"), "pool_exhausted"),
    (asyncio.CancelledError(), "cancelled"),
    (GeneratorExit(), "cancelled"),
    (RetriesStopped(ConnectFailed("refused"), 3), "RetriesStopped"),
    (DeadlineExceeded("late"), "DeadlineExceeded"),
    (InvalidRequest("seq_num", "negative"), "InvalidRequest"),
]


@pytest.mark.parametrize(("error", "label"), LABELS, ids=[type(e).__name__ + ":" + t for e, t in LABELS])
def test_reason_token(error: BaseException, label: str) -> None:
    assert reason_token(error) == label


def test_every_fixed_label_is_in_the_table_and_documented() -> None:
    fixed = {"protocol", "connect", "timeout", "disconnected", "pool_exhausted", "cancelled"}
    assert fixed <= {label for _, label in LABELS}
    assert all(f"`{label}`" in (reason_token.__doc__ or "") for label in fixed)


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (ConnectFailed("refused"), "TransportError"),
        (UpstreamTimeout("no answer"), "TransportError"),
        (TransportError("reset"), "TransportError"),
        (S2Error(503, "unavailable", "m"), "S2Error"),
        (RangeNotSatisfiable(StreamPosition(5, 0)), "RangeNotSatisfiable"),
        (ValueError("x"), "ValueError"),
    ],
)
def test_error_type_names_every_upstream_failure_transport_error(error: BaseException, name: str) -> None:
    assert error_type(error) == name
