"""S2's own server, s2-lite, for tests: where its binary is, and one started on a loopback port.

`scripts/install-s2-lite` builds it (crate `s2-lite`, binary `server`; the `s2` CLI's `s2 lite` is the
same server). It serves in memory, needs no token, and listens on 0.0.0.0 whatever it is told, so it
only runs inside a loopback-only network namespace (`scripts/test-s2-lite` makes one): anywhere else
it would take writes from the whole network.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from sidecar.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
INSTALLED = ROOT / ".tools" / "bin" / "s2-lite"  # scripts/install-s2-lite links the pinned build here

MISSING = "s2-lite is not installed: run scripts/install-s2-lite (or set S2_LITE_BIN to an s2-lite `server` or `s2`)"
NOT_ISOLATED = (
    "s2-lite listens on 0.0.0.0: run this inside a loopback-only network namespace "
    "(scripts/test-s2-lite, or unshare -n sh -c 'ip link set lo up && exec pytest ...')"
)


def command() -> list[str] | None:
    """How to start s2-lite without the port: its `server` binary, or the CLI's `s2 lite`."""
    for candidate in (os.environ.get("S2_LITE_BIN"), str(INSTALLED), shutil.which("s2")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return [candidate, "lite"] if Path(candidate).name == "s2" else [candidate]
    return None


def loopback_only() -> bool:
    """True inside a network namespace whose only interface is the loopback."""
    return all(name == "lo" for _, name in socket.if_nameindex())


class S2Lite:
    """`with S2Lite() as lite:` a fresh in-memory s2-lite at `lite.url` (http://127.0.0.1:P).

    Synchronous, so that it can start before any event loop (pytest_configure). Raises RuntimeError
    with one line saying what to do when s2-lite is not installed or the network is not isolated."""

    def __init__(self) -> None:
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> S2Lite:
        cmd = command()
        if cmd is None:
            raise RuntimeError(MISSING)
        if not loopback_only():
            raise RuntimeError(NOT_ISOLATED)
        port = free_port()
        self._proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(400):
            if self._proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/v1/basins", timeout=1):
                    return self
            except OSError:  # refused while it starts (URLError is an OSError)
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"s2-lite ({' '.join(cmd)} --port {port}) did not answer within 20 s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
