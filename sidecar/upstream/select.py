"""Which transport a client gets: `--upstream-protocol` and the endpoint's scheme decide."""

from __future__ import annotations

import ssl

from sidecar.config import UpstreamProtocol
from sidecar.metrics import Metrics
from sidecar.upstream.endpoint import BasinEndpoint
from sidecar.upstream.http1 import Http1Transport
from sidecar.upstream.transport import Transport


def ssl_context(ca_file: str | None, alpn: list[str] | None = None) -> ssl.SSLContext:
    """The system trust store (OpenSSL honours SSL_CERT_FILE / SSL_CERT_DIR), plus `ca_file`."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def make_transport(
    endpoint: BasinEndpoint,
    protocol: UpstreamProtocol,
    *,
    session_connections: int,
    unary_connections: int,
    connect_timeout: float,
    heartbeat_timeout: float,
    ca_file: str | None,
    h2_connections: int,
    metrics: Metrics,
) -> Transport:
    http1 = Http1Transport(
        session_connections=session_connections,
        unary_connections=unary_connections,
        connect_timeout=connect_timeout,
        heartbeat_timeout=heartbeat_timeout,
        ssl_context=ssl_context(ca_file) if ca_file else None,
    )
    return http1
