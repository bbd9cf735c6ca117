"""Adding grpc-generated servicers to the asyncio server as generic handlers only.

The generated `add_XServicer_to_server` also calls `server.add_registered_method_handlers`. grpc's
asyncio server then keeps one pending "request call" future per registered method and waits on all
of them (`asyncio.wait`) before every call it accepts, whatever the call's method: health's three
methods and reflection's one cost every `CheckTail` about 24,000 CPU instructions (~8% of a trivial
server's whole call; measured with callgrind, README Performance). As generic handlers the same
methods are served the same way, found by name after the sidecar's own service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc


class GenericOnly:
    """A view of a server for `add_XServicer_to_server`: takes the generic handler, skips the
    pre-registration."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler[Any, Any]]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        pass  # served by the generic handler above


def generic_only(server: grpc.aio.Server) -> Any:
    """`add_XServicer_to_server(servicer, generic_only(server))`: typed Any, as the generated
    functions take any server."""
    return GenericOnly(server)
