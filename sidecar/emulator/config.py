"""The emulator's settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8080  # 0 = pick a free port
    data_dir: Path | None = None  # None = in memory; else the SQLite file emulator.sqlite3 in this directory
    require_token: str | None = None  # None = accept any bearer token, or none
    heartbeat_min: float = 5.0  # seconds; S2 sends heartbeats at random 5-15 s gaps
    heartbeat_max: float = 15.0
