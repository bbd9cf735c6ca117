"""Listen addresses: parsing (`HOST:PORT`, `unix:PATH`) and refusing to share a port or socket.

gRPC sets SO_REUSEPORT by default, so a second sidecar on the same port used to start and split the
calls with the first; and gRPC removes an existing unix socket file, so it would take over a socket
another sidecar still serves. Every listener (gRPC, admin, emulator) is checked here before anything
starts, and a taken address stops the process with one line naming the setting.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass


class ListenError(Exception):
    """An address cannot be listened on; the message names the setting and what to do."""


@dataclass(frozen=True)
class TcpAddress:
    host: str
    port: int  # 0: any free port

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class UnixAddress:
    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


def parse_host_port(addr: str) -> TcpAddress:
    """`HOST:PORT` (IPv6 hosts in brackets). Raises ValueError saying what is wrong."""
    host, sep, port = addr.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise ValueError("expected HOST:PORT")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port!r}")
    return TcpAddress(host, int(port))


def parse_listen(addr: str) -> TcpAddress | UnixAddress:
    """`HOST:PORT`, or `unix:PATH` / `unix:///abs/path` (gRPC's spellings)."""
    if addr.startswith("unix:"):
        path = addr[len("unix:") :]
        path = path[2:] if path.startswith("//") else path
        if not path:
            raise ValueError("unix: needs a socket path, e.g. unix:/run/s2-sidecar/sidecar.sock")
        return UnixAddress(path)
    return parse_host_port(addr)


def ensure_available(addr: TcpAddress | UnixAddress, setting: str) -> None:
    """Raise ListenError if another process listens on `addr`. `setting` names where it came from,
    e.g. "--listen / S2_SIDECAR_LISTEN"."""
    if isinstance(addr, UnixAddress):
        _ensure_unix_available(addr, setting)
        return
    if addr.port == 0:
        return
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    try:
        # create_server sets SO_REUSEADDR (as every server here does) but not SO_REUSEPORT: it fails
        # exactly when a real listener holds the port, not for connections lingering in TIME_WAIT.
        socket.create_server((addr.host, addr.port), family=family).close()
    except OSError as e:
        raise bind_error(addr, setting, e) from None


def bind_error(addr: TcpAddress | str, setting: str, e: OSError) -> ListenError:
    """The ListenError for a failed bind, in words."""
    if e.errno == errno.EADDRINUSE:
        return ListenError(
            f"cannot listen on {addr} ({setting}): address already in use (another s2-sidecar?); "
            "stop it or choose another address"
        )
    return ListenError(f"cannot listen on {addr} ({setting}): {e.strerror or e}")


def _ensure_unix_available(addr: UnixAddress, setting: str) -> None:
    try:
        mode = os.stat(addr.path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ListenError(f"cannot listen on {addr} ({setting}): the path exists and is not a socket")
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(addr.path)
        except OSError:
            return  # a stale socket file from a process that is gone: safe to replace
    raise ListenError(
        f"cannot listen on {addr} ({setting}): another process is serving this socket; stop it or choose another path"
    )


def remove_stale_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
