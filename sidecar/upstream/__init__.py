"""The only place that talks HTTP to S2: one aiohttp client, S2's retry policy, endpoint rules."""

from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.endpoint import BasinEndpoint
from sidecar.upstream.retry import RetryPolicy

__all__ = ["BasinEndpoint", "RetryPolicy", "UpstreamClient"]
