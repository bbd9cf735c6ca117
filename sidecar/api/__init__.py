"""The gRPC API: the servicer, request validation, and the mapping of errors to statuses."""

from sidecar.api.servicer import SERVICE_NAME, StreamService

__all__ = ["SERVICE_NAME", "StreamService"]
