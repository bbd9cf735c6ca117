"""HTTP/1.1 through aiohttp (its C parser is the fastest we have): an aiohttp app whose one route
turns each request into an `Exchange` for `app.handle`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from .exchange import MAX_REQUEST_BYTES, Exchange, too_large


class AiohttpExchange(Exchange):
    protocol = "HTTP/1.1"

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.method = request.method
        self.raw_path = request.rel_url.raw_path
        self.headers = request.headers
        self.query = request.query
        self.response: web.StreamResponse | None = None

    async def body(self, limit: int = MAX_REQUEST_BYTES) -> bytes:
        try:
            data = await self._request.read()  # bounded by the app's client_max_size
        except web.HTTPRequestEntityTooLarge:
            raise too_large() from None
        if len(data) > limit:
            raise too_large()
        return data

    async def chunk(self) -> bytes:
        data, _ = await self._request.content.readchunk()
        return data

    async def reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.response = web.Response(status=status, body=body, headers=headers)

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        self.response = web.StreamResponse(status=status, headers=headers)
        await self.response.prepare(self._request)

    async def write(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(data)

    async def end(self) -> None:
        assert self.response is not None
        await self.response.write_eof()

    async def cut(self, error_code: int | None = None) -> None:
        transport = self._request.transport
        if transport is None:
            return
        # Let the bytes already written reach the socket first: abort() drops buffered data.
        for _ in range(100):
            if transport.is_closing() or transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        transport.abort()


Handler = Callable[[Exchange], Awaitable[None]]


def build_http1_app(handle: Handler) -> web.Application:
    async def route(request: web.Request) -> web.StreamResponse:
        exchange = AiohttpExchange(request)
        try:
            await handle(exchange)
        except ConnectionError:
            return web.Response(status=499)  # the client went away; there is no one to answer
        if exchange.response is None:  # cut before anything was sent: aiohttp needs an answer
            return web.Response(status=499)
        return exchange.response

    # The app's own limit is a little above ours, so that `body()` answers S2's 400 itself.
    app = web.Application(client_max_size=MAX_REQUEST_BYTES + 1)
    # `[\s\S]`, not `.`: aiohttp matches the decoded path, and a stream name may hold a newline.
    app.router.add_route("*", r"/{path:[\s\S]*}", route)
    return app
