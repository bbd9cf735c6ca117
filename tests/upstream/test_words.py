"""Upstream failures reach apps and logs in words (issue 16, item 3), not as Python reprs:
observed before, `ClientConnectorError(ConnectionKey(host='127.0.0.1', port=8800, is_ssl=False, ...))`."""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiohttp
import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness, free_port
from sidecar.upstream.words import in_words

URL = "http://127.0.0.1:8800/v1/streams/s/records"


def _caused(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("error", "connect", "expected"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True,
         "cannot connect to S2 at 127.0.0.1:8800 (connection refused); check S2_BASIN_ENDPOINT"),
        (_caused(RuntimeError("h2 connect"), ConnectionRefusedError(111, "Connection refused")), True,
         "cannot connect to S2 at 127.0.0.1:8800 (connection refused); check S2_BASIN_ENDPOINT"),
        (socket.gaierror(-2, "Name or service not known"), True,
         "cannot resolve 127.0.0.1 (Name or service not known); check S2_BASIN_ENDPOINT"),
        (aiohttp.ConnectionTimeoutError(), True,
         "cannot connect to S2 at 127.0.0.1:8800 within the connect timeout (S2_SIDECAR_CONNECT_TIMEOUT)"),
        (OSError(113, "No route to host"), True,
         "cannot connect to S2 at 127.0.0.1:8800 (no route to host); check S2_BASIN_ENDPOINT"),
        (ConnectionResetError(104, "Connection reset by peer"), False, "the connection to S2 at 127.0.0.1:8800 was reset"),
        (asyncio.IncompleteReadError(b"ab", 5), False,
         "the connection to S2 at 127.0.0.1:8800 closed in the middle of an answer"),
        (TimeoutError(), False, "S2 at 127.0.0.1:8800 did not answer in time"),
        (aiohttp.ServerDisconnectedError(), False, "the connection to S2 at 127.0.0.1:8800 failed: Server disconnected"),
    ],
)  # fmt: skip
def test_in_words(error: BaseException, connect: bool, expected: str) -> None:
    words = in_words(error, URL, connect_failed=connect)
    assert words.startswith(expected), words
    assert "Error(" not in words and "ConnectionKey" not in words


def test_an_untrusted_certificate_names_the_ca_setting() -> None:
    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_message = "self-signed certificate"
    words = in_words(_caused(aiohttp.ClientSSLError.__new__(aiohttp.ClientSSLError), err), "https://x.example/v1", connect_failed=True)
    assert words == (
        "TLS with S2 at x.example:443 failed: certificate not trusted (self-signed certificate); "
        "check S2_BASIN_ENDPOINT, or S2_SIDECAR_UPSTREAM_CA_FILE for a private CA"
    )


async def test_a_refused_upstream_reaches_the_app_in_words(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    async with SidecarHarness(basin_endpoint=f"http://127.0.0.1:{port}/v1", retry_attempts=1) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.Read(pb.ReadRequest(stream="s", seq_num=0), timeout=10)
    err = info.value
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert err.details() == (
        f"read {h.basin}/s: cannot connect to S2 at 127.0.0.1:{port} (connection refused); check S2_BASIN_ENDPOINT"
    )
    # The repr stays for debugging, at debug level only.
    for record in caplog.records:
        if record.levelname != "DEBUG":
            assert "ConnectionKey" not in record.getMessage()


async def test_an_unresolvable_host_reaches_the_app_in_words() -> None:
    async with SidecarHarness(basin_endpoint="http://no-such-host.invalid:8080/v1", retry_attempts=1) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.CheckTail(pb.CheckTailRequest(stream="s"), timeout=10)
    details = info.value.details() or ""
    assert details.startswith(f"check tail of {h.basin}/s: cannot resolve no-such-host.invalid ("), details
    assert details.endswith("; check S2_BASIN_ENDPOINT")


def test_a_connect_failure_without_an_os_error_keeps_the_transports_words() -> None:
    from sidecar.upstream.http2 import ConnectFailed

    words = in_words(ConnectFailed("127.0.0.1:8800 answered HTTP/1.1, not HTTP/2 (h2c prior knowledge)"), URL, connect_failed=True)
    assert words == (
        "cannot connect to S2 at 127.0.0.1:8800: 127.0.0.1:8800 answered HTTP/1.1, not HTTP/2 (h2c prior knowledge); "
        "check S2_BASIN_ENDPOINT"
    )
