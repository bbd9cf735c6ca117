"""An S2-compatible server for tests and local development.

It speaks S2's account API (`/v1/basins`) and basin API (`/v1/streams`: streams, append and
append sessions, tail, reads as JSON, protobuf, SSE and s2s sessions) on one port, over HTTP/1.1
and HTTP/2 (h2c with prior knowledge, or TLS with ALPN `h2`/`http/1.1`), as S2's own SDKs expect,
with S2's rules, defaults and error bodies, keeps data in memory or in SQLite, and offers test hooks under `/_emulator/`
(statistics, injected faults, closing sessions). As in S2, basins and streams exist only once
created, unless a basin's config creates streams on append / read (`AUTO_CREATE`,
`CREATE_ON_APPEND`).

    async with Emulator(EmulatorConfig(port=0, basins={"my-basin1": AUTO_CREATE})) as emu:
        ...  # talk to emu.url with the header `s2-basin: my-basin1`

Modules: `store` (basins, streams, records, trims, SQLite), `s2_configs` (S2's basin and stream
configs: defaults, validation, inheritance), `app` (routes and operations), `sessions` (SSE and s2s
session loop, open reads), `output` (replies, error bodies, cut bodies), `hooks` (the `/_emulator/`
test hooks), `faults` (test hooks' faults and statistics), `state` (EmulatorState: what the
operations and the hooks share), `settings` (EmulatorConfig, the emulator's own settings), `server`
(Emulator, serve). The HTTP
fronts, the only modules that know the protocol: `front` (one listener: TLS ALPN or the HTTP/2
preface picks the protocol), `http1` (aiohttp), `h2server` (HTTP/2 on `h2`), `exchange` (the
protocol-neutral request/answer the operations see).
"""

from .s2_configs import AUTO_CREATE, CREATE_ON_APPEND
from .server import Emulator, serve
from .settings import EmulatorConfig

__all__ = ["AUTO_CREATE", "CREATE_ON_APPEND", "Emulator", "EmulatorConfig", "serve"]
