"""What the upstream client and its transports are configured with: one frozen object, built by
`sidecar.config.Config.upstream_settings()` (or by hand in tests), taken whole by `UpstreamClient`
and by every transport."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from sidecar.types import DEFAULT_MAX_MESSAGE_BYTES
from sidecar.upstream.endpoint import BasinEndpoint


class UpstreamFormat(Enum):
    """How to talk to S2: protobuf one-shot reads and s2s sessions, or JSON and SSE."""

    PROTOBUF = "protobuf"
    JSON = "json"


class UpstreamProtocol(Enum):
    """Which HTTP version to speak upstream. AUTO: HTTP/2 where TLS ALPN offers it (as S2's SDKs
    do), HTTP/1.1 for `http://` and when ALPN picks http/1.1."""

    AUTO = "auto"
    HTTP1 = "http1"
    HTTP2 = "http2"


@dataclass(frozen=True)
class UpstreamSettings:
    """Where S2 is and how to talk to it. The defaults are the sidecar's (see `sidecar.config`)."""

    endpoint: BasinEndpoint
    access_token: str | None = field(default=None, repr=False)  # secret: never printed
    format: UpstreamFormat = UpstreamFormat.PROTOBUF
    protocol: UpstreamProtocol = UpstreamProtocol.AUTO
    # HTTP/1.1 pools: every open session holds a connection, and so does every long poll.
    session_connections: int = 1000
    unary_connections: int = 100
    long_poll_connections: int = 1000
    h2_connections: int = 4  # most HTTP/2 connections per origin
    connect_timeout: float = 5.0
    request_timeout: float = 10.0  # a unary request, on top of any long-poll wait
    heartbeat_timeout: float = 20.0  # session silence (no batch, no heartbeat) that fails it
    ca_file: str | None = None  # extra CA certificates for https:// upstreams
    # No batch handed on is larger than this (serialized): it becomes one gRPC message.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
