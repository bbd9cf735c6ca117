"""A request whose bytes are not a valid message (e.g. a string field that is not UTF-8) is the
caller's mistake: INVALID_ARGUMENT naming the message, never UNKNOWN."""

from __future__ import annotations

import grpc
import pytest

from sidecar.testing import SidecarHarness
from tests.api.helpers import error_info

SERVICE = "/s2sidecar.v1.StreamService/"
# Field 2 (`stream`, a string in all three requests) holding bytes that are not UTF-8.
NOT_UTF8_STREAM = b"\x12\x02\xff\xfe"
# Field 2 announcing 10 bytes that are not there.
TRUNCATED = b"\x12\x0aabc"


def _identity(data: bytes) -> bytes:
    return data


async def send_raw(h: SidecarHarness, method: str, payload: bytes) -> grpc.aio.AioRpcError:
    assert h.channel is not None
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if method == "ReadSession":
            call = h.channel.unary_stream(
                SERVICE + method, request_serializer=_identity, response_deserializer=_identity
            )(payload, timeout=5)
            async for _ in call:
                pass
        else:
            await h.channel.unary_unary(
                SERVICE + method, request_serializer=_identity, response_deserializer=_identity
            )(payload, timeout=5)
    return info.value


@pytest.mark.parametrize(
    ("method", "message"),
    [("Read", "ReadRequest"), ("ReadSession", "ReadSessionRequest"), ("CheckTail", "CheckTailRequest")],
)
async def test_string_field_not_utf8_is_invalid_argument(harness: SidecarHarness, method: str, message: str) -> None:
    err = await send_raw(harness, method, NOT_UTF8_STREAM)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    details = err.details() or ""
    assert f"not a valid s2sidecar.v1.{message}" in details
    assert "stream" in details and "UTF-8" in details
    assert error_info(err).reason == "invalid_argument"


@pytest.mark.parametrize("method", ["Read", "ReadSession", "CheckTail"])
async def test_truncated_message_is_invalid_argument(harness: SidecarHarness, method: str) -> None:
    err = await send_raw(harness, method, TRUNCATED)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert "not a valid s2sidecar.v1." in (err.details() or "")
