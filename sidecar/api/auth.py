"""Optional app authentication: with `S2_SIDECAR_APP_TOKEN` set, every StreamService call must
carry `authorization: Bearer <token>` in its metadata. Health and reflection stay open so probes
and grpcurl's `list` keep working. Tokens are compared in constant time and never logged."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from sidecar.api.servicer import SERVICE_NAME

_PREFIX = f"/{SERVICE_NAME}/"
_MESSAGE = "this sidecar requires an app token: send metadata `authorization: Bearer <S2_SIDECAR_APP_TOKEN>`"


if TYPE_CHECKING:  # the stubs make it generic; the runtime class is not subscriptable
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor


def bearer_token(value: str | bytes) -> bytes | None:
    """The credentials of an `authorization` value in the Bearer scheme, else None. The scheme is
    case-insensitive and followed by one or more spaces (RFC 9110 section 11.1 and 11.4)."""
    raw = value.encode() if isinstance(value, str) else value
    scheme, _, rest = raw.partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return rest.lstrip(b" ")


class AppTokenInterceptor(_Interceptor):
    def __init__(self, token: str) -> None:
        self._expected = token.encode()

    def _authorized(self, metadata: Any) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                given = bearer_token(value)
                return given is not None and hmac.compare_digest(given, self._expected)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        if handler is None or not details.method.startswith(_PREFIX) or self._authorized(details.invocation_metadata):
            return handler

        async def deny_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, _MESSAGE)

        async def deny_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, _MESSAGE)
            yield  # pragma: no cover  # makes this an async generator, as the handler kind requires

        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(deny_stream, request_deserializer=handler.request_deserializer)
        return grpc.unary_unary_rpc_method_handler(deny_unary, request_deserializer=handler.request_deserializer)
