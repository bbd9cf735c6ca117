"""An S2-compatible server for tests and local development.

It speaks S2's basin API under `/v1` (streams, append, tail, reads as JSON, protobuf, SSE and
s2s sessions) with S2's rules and error bodies, keeps data in memory or in SQLite, and offers
test hooks under `/_emulator/` (statistics, injected faults, closing sessions).

    async with Emulator(EmulatorConfig(port=0)) as emu:
        ...  # talk to emu.url with the header `s2-basin: <basin>`

Modules: `store` (streams, records, SQLite), `app` (routes and operations), `sessions` (SSE and
s2s session loop, open reads), `output` (replies, error bodies, cut bodies), `faults` (test
hooks' faults and statistics), `config` (EmulatorConfig), `server` (Emulator, serve).
"""

from .config import EmulatorConfig
from .server import Emulator, serve

__all__ = ["Emulator", "EmulatorConfig", "serve"]
