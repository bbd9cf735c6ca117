"""The only place that talks HTTP to S2: the client (S2's read endpoints, one attempt each) above
one transport interface (HTTP/1.1 on aiohttp, HTTP/2 on h2), configured by one settings object;
S2's retry policy; endpoint rules."""

from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.endpoint import BasinEndpoint
from sidecar.upstream.retry import RetryPolicy
from sidecar.upstream.settings import UpstreamFormat, UpstreamProtocol, UpstreamSettings

__all__ = ["BasinEndpoint", "RetryPolicy", "UpstreamClient", "UpstreamFormat", "UpstreamProtocol", "UpstreamSettings"]
