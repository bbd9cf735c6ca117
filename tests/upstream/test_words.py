"""Upstream failures reach apps and logs in words, not as Python reprs such as
`ClientConnectorError(ConnectionKey(host='127.0.0.1', port=8800, is_ssl=False, ...))`."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl

import aiohttp
import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.errors import ConnectFailed, HostNotFound, TransportError, UpstreamTimeout
from sidecar.telemetry import reason_token
from sidecar.testing import SidecarHarness, free_port
from sidecar.upstream.http1 import Http1Transport
from sidecar.upstream.http2 import AlpnRefused, ConnectionLost, H2ConnectFailed, Http2Transport, StreamReset
from sidecar.upstream.words import in_words, transport_error

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
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), True,
         "cannot resolve 127.0.0.1: no such host (Name or service not known); check S2_BASIN_ENDPOINT"),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), True,
         "cannot resolve 127.0.0.1: DNS failed, may be temporary (Temporary failure in name resolution); "
         "check S2_BASIN_ENDPOINT"),
        (aiohttp.ConnectionTimeoutError(), True,
         "cannot connect to S2 at 127.0.0.1:8800 within the connect timeout (S2_SIDECAR_CONNECT_TIMEOUT)"),
        (OSError(113, "No route to host"), True,
         "cannot connect to S2 at 127.0.0.1:8800 (no route to host); check S2_BASIN_ENDPOINT"),
        (ConnectionResetError(104, "Connection reset by peer"), False, "the connection to S2 at 127.0.0.1:8800 was reset"),
        (asyncio.IncompleteReadError(b"ab", 5), False,
         "the connection to S2 at 127.0.0.1:8800 closed in the middle of an answer"),
        (TimeoutError(), False, "S2 at 127.0.0.1:8800 did not answer in time"),
        (aiohttp.ServerDisconnectedError(), False, "the connection to S2 at 127.0.0.1:8800 failed: Server disconnected"),
        (_caused(aiohttp.ClientPayloadError("Response payload is not completed"), aiohttp.ServerTimeoutError()), False,
         "S2 at 127.0.0.1:8800 did not answer in time"),
    ],
)  # fmt: skip
def test_in_words(error: BaseException, connect: bool, expected: str) -> None:
    words = in_words(error, URL, connect_failed=connect)
    assert words.startswith(expected), words
    assert "Error(" not in words and "ConnectionKey" not in words


def test_an_untrusted_certificate_names_the_ca_setting() -> None:
    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_message = "self-signed certificate"
    words = in_words(
        _caused(aiohttp.ClientSSLError.__new__(aiohttp.ClientSSLError), err),
        "https://x.example/v1",
        connect_failed=True,
    )
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
    assert re.fullmatch(
        re.escape(f"read {h.basin}/s: cannot connect to S2 at 127.0.0.1:{port} (connection refused); ")
        + r"check S2_BASIN_ENDPOINT \(tried 2 times over \d+\.\ds\)",
        err.details() or "",
    ), err.details()
    # The repr stays for debugging, at debug level only.
    for record in caplog.records:
        if record.levelname != "DEBUG":
            assert "ConnectionKey" not in record.getMessage()


async def test_an_unresolvable_host_reaches_the_app_in_words() -> None:
    async with SidecarHarness(basin_endpoint="http://no-such-host.invalid:8080/v1", retry_attempts=1) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.CheckTail(pb.CheckTailRequest(stream="s"), timeout=10)
    details = info.value.details() or ""
    expected = f"check tail of {h.basin}/s: cannot resolve no-such-host.invalid: no such host ("
    assert details.startswith(expected), details
    assert details.endswith("; check S2_BASIN_ENDPOINT")


def test_a_connect_failure_without_an_os_error_keeps_the_transports_words() -> None:
    words = in_words(
        H2ConnectFailed("127.0.0.1:8800 answered HTTP/1.1, not HTTP/2 (h2c prior knowledge)"), URL, connect_failed=True
    )
    assert words == (
        "cannot connect to S2 at 127.0.0.1:8800: 127.0.0.1:8800 answered HTTP/1.1, not HTTP/2 (h2c prior knowledge); "
        "check S2_BASIN_ENDPOINT"
    )


H1 = Http1Transport.connect_errors
# What aiohttp's ClientConnectorError takes to say where it was connecting.
_KEY = aiohttp.client_reqrep.ConnectionKey("x", 80, False, True, None, None, None)
H2 = Http2Transport.connect_errors


@pytest.mark.parametrize(
    ("error", "connect_errors", "kind", "label"),
    [
        (ConnectionRefusedError(111, "Connection refused"), H1, ConnectFailed, "connect"),
        (aiohttp.ConnectionTimeoutError(), H1, ConnectFailed, "connect"),  # a TimeoutError too: connect wins
        (aiohttp.ServerTimeoutError("Timeout on reading data from socket"), H1, UpstreamTimeout, "timeout"),
        (TimeoutError(), H1, UpstreamTimeout, "timeout"),
        (aiohttp.ServerDisconnectedError(), H1, TransportError, "disconnected"),
        (ConnectionResetError(104, "Connection reset by peer"), H1, TransportError, "disconnected"),
        (asyncio.IncompleteReadError(b"ab", 5), H1, TransportError, "disconnected"),
        (H2ConnectFailed("answered HTTP/1.1, not HTTP/2"), H2, ConnectFailed, "connect"),
        (AlpnRefused("did not pick h2"), H2, ConnectFailed, "connect"),
        (ConnectionRefusedError(111, "Connection refused"), H2, ConnectFailed, "connect"),
        (_caused(H2ConnectFailed("connect"), socket.gaierror(socket.EAI_NONAME, "Name or service not known")), H2,
         HostNotFound, "host_not_found"),
        (_caused(H2ConnectFailed("connect"), socket.gaierror(socket.EAI_AGAIN, "Temporary failure")), H2,
         ConnectFailed, "connect"),
        (aiohttp.ClientConnectorDNSError(_KEY, socket.gaierror(socket.EAI_NONAME, "Name or service not known")), H1,
         HostNotFound, "host_not_found"),
        (aiohttp.ClientConnectorDNSError(_KEY, socket.gaierror(socket.EAI_AGAIN, "Temporary failure")), H1,
         ConnectFailed, "connect"),
        (TimeoutError("upstream request timed out"), H2, UpstreamTimeout, "timeout"),
        (ConnectionLost("upstream closed"), H2, TransportError, "disconnected"),
        (StreamReset("upstream reset HTTP/2 stream 1"), H2, TransportError, "disconnected"),
    ],
)  # fmt: skip
def test_a_transports_exception_becomes_the_sidecars(
    error: BaseException, connect_errors: tuple[type[BaseException], ...], kind: type, label: str
) -> None:
    """One translation: the class says why (the classifier reads nothing else), the message says it in words."""
    err = transport_error("read b/s", error, URL, connect_errors)
    assert type(err) is kind
    assert reason_token(err) == label
    assert err.retryable is (kind is not HostNotFound)  # DNS saying "no such name" is never retried
    assert str(err) == f"read b/s: {in_words(error, URL, connect_failed=kind is ConnectFailed)}"
