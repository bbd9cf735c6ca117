"""Upstream failures in words, for apps and logs, and the one place a transport's exception
becomes the sidecar's (`transport_error`).

aiohttp's and h2's exceptions print as Python reprs (`ClientConnectorError(ConnectionKey(host=...,
is_ssl=False, ...))`); an app developer or an on-call engineer needs what happened, where, and which
setting to check. The repr stays available to debug logs (the exception chain keeps the original).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import aiohttp

from sidecar.errors import ConnectFailed, HostNotFound, TransportError, UpstreamTimeout

CHECK_ENDPOINT = "check S2_BASIN_ENDPOINT"


def transport_error(
    what: str, e: BaseException, url: str, connect_errors: tuple[type[BaseException], ...]
) -> TransportError:
    """`e`, raised by a transport talking to `url` while doing `what`, as ConnectFailed (it is one
    of the transport's `connect_errors`), UpstreamTimeout or TransportError (a connection that
    broke), saying in words what failed. Connect errors first: a connect timeout is a
    TimeoutError too."""
    connect = isinstance(e, connect_errors)
    kind: type[TransportError]
    if connect:
        kind = HostNotFound if no_such_host(e) else ConnectFailed
    else:
        kind = UpstreamTimeout if isinstance(e, TimeoutError) else TransportError
    return kind(f"{what}: {in_words(e, url, connect_failed=connect)}")


# DNS answers that say the name does not exist (or has no address), as opposed to EAI_AGAIN
# ("temporary failure") and EAI_FAIL (a server failure), which a retry may heal.
_NO_SUCH_NAME = frozenset(code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None)


def no_such_host(e: BaseException) -> bool:
    """Whether DNS said the host name does not exist: `e` or what it wraps is a `socket.gaierror`
    with EAI_NONAME (or EAI_NODATA: the name has no address)."""
    return any(isinstance(x, socket.gaierror) and x.errno in _NO_SUCH_NAME for x in _chain(e))


def _chain(e: BaseException) -> Iterator[BaseException]:
    """`e`, its causes and contexts, and the OSError aiohttp wraps in `os_error`."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [e]
    while todo:
        x = todo.pop(0)
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        todo += [x.__cause__, x.__context__, getattr(x, "os_error", None)]


def _where(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return host, f"{host}:{port}"


def in_words(e: BaseException, url: str, *, connect_failed: bool) -> str:
    """What went wrong talking to S2 at `url`, in one sentence that names what to check.
    `connect_failed`: no connection could be made (as opposed to one that broke)."""
    host, where = _where(url)
    chain = list(_chain(e))
    for x in chain:
        if isinstance(x, ssl.SSLCertVerificationError):
            return (
                f"TLS with S2 at {where} failed: certificate not trusted ({x.verify_message}); "
                "check S2_BASIN_ENDPOINT, or S2_SIDECAR_UPSTREAM_CA_FILE for a private CA"
            )
    for x in chain:
        if isinstance(x, ssl.SSLError):
            return f"TLS with S2 at {where} failed ({x.reason or x}); {CHECK_ENDPOINT}"
        if isinstance(x, socket.gaierror):
            what = "no such host" if x.errno in _NO_SUCH_NAME else "DNS failed, may be temporary"
            return f"cannot resolve {host}: {what} ({x.strerror}); {CHECK_ENDPOINT}"
        if isinstance(x, ConnectionRefusedError) or (isinstance(x, OSError) and x.errno == errno.ECONNREFUSED):
            return f"cannot connect to S2 at {where} (connection refused); {CHECK_ENDPOINT}"
    if connect_failed:
        if any(isinstance(x, asyncio.TimeoutError) for x in chain):
            return (
                f"cannot connect to S2 at {where} within the connect timeout (S2_SIDECAR_CONNECT_TIMEOUT); "
                f"{CHECK_ENDPOINT}"
            )
        reason = next((x.strerror for x in chain if isinstance(x, OSError) and x.strerror), None)
        if reason:
            return f"cannot connect to S2 at {where} ({reason.lower()}); {CHECK_ENDPOINT}"
        # No OS error: the transport said why in words (e.g. "answered HTTP/1.1, not HTTP/2").
        return f"cannot connect to S2 at {where}: {e}; {CHECK_ENDPOINT}"
    if isinstance(e, asyncio.TimeoutError) or any(isinstance(x, aiohttp.ServerTimeoutError) for x in chain):
        return f"S2 at {where} did not answer in time"
    for x in chain:
        if isinstance(x, ConnectionResetError):
            return f"the connection to S2 at {where} was reset"
        if isinstance(x, asyncio.IncompleteReadError):
            return f"the connection to S2 at {where} closed in the middle of an answer"
    text = str(e) or type(e).__name__
    return f"the connection to S2 at {where} failed: {text}"
