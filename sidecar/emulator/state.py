"""What one running emulator holds: its settings, its store, and the test hooks' faults,
statistics and registries. The S2 operations (`app`) and the test hooks (`hooks`) both work on it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .exchange import Http2Connection
from .faults import Faults, Stats
from .sessions import LiveReads
from .settings import EmulatorConfig
from .store import Store


@dataclass
class EmulatorState:
    config: EmulatorConfig
    store: Store
    faults: Faults = field(default_factory=Faults)
    stats: Stats = field(default_factory=Stats)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    live: LiveReads = field(init=False)
    http2: set[Http2Connection] = field(default_factory=set)  # open HTTP/2 connections, for the hooks

    def __post_init__(self) -> None:
        self.live = LiveReads(self.stats)
