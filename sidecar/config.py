"""Configuration: every setting is a flag and an environment variable, with a documented default.

S2's own variable names are used where they exist (`S2_ACCESS_TOKEN`, `S2_BASIN_ENDPOINT`); the
sidecar's own settings are `S2_SIDECAR_*`. `S2_ACCOUNT_ENDPOINT`, which S2's SDKs read, is left
alone: the sidecar talks to the basin endpoint only, and a pod may set it for its app containers.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from sidecar.encryption import KeyFiles
from sidecar.listeners import parse_host_port, parse_listen
from sidecar.types import DEFAULT_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES
from sidecar.upstream import BasinEndpoint, UpstreamFormat, UpstreamProtocol, UpstreamSettings
from sidecar.wire.names import basin_name_problem


@dataclass(frozen=True)
class Config:
    listen: tuple[str, ...] = ("127.0.0.1:50051",)
    basin_endpoint: str | None = None
    access_token: str | None = field(default=None, repr=False)  # secret: never printed
    app_token: str | None = field(default=None, repr=False)  # secret: never printed
    encryption_keys_dir: str | None = None  # a directory of secrets: the path is not one
    default_basin: str | None = None
    emulator_listen: str = "127.0.0.1:8080"
    emulator_data_dir: str | None = None
    admin_listen: str | None = "127.0.0.1:9090"
    session_connections: int = 1000
    unary_connections: int = 100
    long_poll_connections: int = 1000
    max_pending_calls: int = 20_000
    connect_timeout: float = 5.0
    request_timeout: float = 10.0
    heartbeat_timeout: float = 20.0
    upstream_format: UpstreamFormat = UpstreamFormat.PROTOBUF
    upstream_protocol: UpstreamProtocol = UpstreamProtocol.AUTO
    upstream_ca_file: str | None = None
    upstream_h2_connections: int = 4
    retry_attempts: int = 10
    retry_base_delay: float = 0.1
    grace_period: float = 10.0
    tail_max_staleness: float = 1.0
    tail_cache_size: int = 10_000
    share_sessions: bool = True
    subscriber_queue: int = 64
    history_cache_bytes: int = 256 * 1024 * 1024
    history_cache_max_age: float = 5.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    unix_socket_mode: int = 0o600
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = False
    unhealthy_after: float = 30.0
    ready_requires_upstream: bool = False

    @property
    def uses_emulator(self) -> bool:
        return not self.basin_endpoint

    def upstream_settings(self, endpoint: BasinEndpoint | None = None) -> UpstreamSettings:
        """The upstream client's settings. `endpoint`: where S2 is, when not `basin_endpoint` (the
        embedded emulator's address, known once it listens)."""
        if endpoint is None:
            if self.basin_endpoint is None:
                raise ValueError("no basin endpoint: set S2_BASIN_ENDPOINT, or pass the emulator's")
            endpoint = BasinEndpoint.parse(self.basin_endpoint)
        return UpstreamSettings(
            endpoint=endpoint,
            access_token=self.access_token,
            format=self.upstream_format,
            protocol=self.upstream_protocol,
            session_connections=self.session_connections,
            unary_connections=self.unary_connections,
            long_poll_connections=self.long_poll_connections,
            h2_connections=self.upstream_h2_connections,
            connect_timeout=self.connect_timeout,
            request_timeout=self.request_timeout,
            heartbeat_timeout=self.heartbeat_timeout,
            ca_file=self.upstream_ca_file,
            max_message_bytes=self.max_message_bytes,
        )


@dataclass(frozen=True)
class _Setting:
    name: str  # Config field
    flag: str
    env: str | None
    help: str
    parse: Callable[[str], Any] = str
    metavar: str | None = None


def _listen_list(value: str) -> tuple[str, ...]:
    addrs = tuple(a.strip() for a in value.split(",") if a.strip())
    if not addrs:
        raise ValueError("at least one address is needed")
    for addr in addrs:
        try:
            parse_listen(addr)
        except ValueError as e:
            raise ValueError(f"{addr!r}: {e}") from None
    return addrs


def _host_port(value: str) -> str:
    parse_host_port(value)
    return value


def _basin_endpoint(value: str) -> str:
    BasinEndpoint.parse(value)  # the same parse the upstream client does, so it cannot fail later
    return value


def _basin(value: str) -> str:
    if problem := basin_name_problem(value):
        raise ValueError(problem)
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.lower() not in choices:
            raise ValueError(f"must be {', '.join(choices[:-1])} or {choices[-1]}")
        return value.lower()

    return parse


_E = TypeVar("_E", bound=Enum)


def _enum(kind: type[_E]) -> Callable[[str], _E]:
    def parse(value: str) -> _E:
        names = [str(m.value) for m in kind]
        if value.lower() not in names:
            raise ValueError(f"must be {', '.join(names[:-1])} or {names[-1]}")
        return kind(value.lower())

    return parse


def _octal_mode(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise ValueError("must be an octal file mode") from None
    if not 0 <= mode <= 0o777:
        raise ValueError("must be an octal file mode from 000 to 777")
    return mode


def _number(kind: type[int] | type[float], value: str) -> float:
    """int() or float() of `value`, failing in words rather than Python's."""
    try:
        return kind(value)
    except ValueError:
        raise ValueError("must be a whole number" if kind is int else "must be a number of seconds") from None


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(value: str) -> float | int:
        n = _number(kind, value)
        if n <= 0:
            raise ValueError("must be positive")
        return n

    return parse


def _non_negative(value: str) -> float:
    n = _number(float, value)
    if n < 0:
        raise ValueError("must not be negative")
    return n


def _cache_bytes(value: str) -> int:
    n = int(_number(int, value))
    if n < 0:
        raise ValueError("must not be negative (0 turns the cache off)")
    return n


def _message_bytes(value: str) -> int:
    n = int(_number(int, value))
    if n < MIN_MAX_MESSAGE_BYTES:
        raise ValueError(f"must be at least {MIN_MAX_MESSAGE_BYTES} (3 MiB): one S2 record can take 2 MiB on the wire")
    return n


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _ca_file(value: str) -> str:
    if not os.path.isfile(value):
        raise ValueError("no such file")
    return value


def _keys_dir(value: str) -> str:
    KeyFiles.load(value)  # read once here, so that a bad file stops the sidecar with the others
    return value


def _optional_addr(value: str) -> str | None:
    return None if value.lower() in ("", "off", "none") else _host_port(value)


SETTINGS: Sequence[_Setting] = (
    _Setting("listen", "--listen", "S2_SIDECAR_LISTEN",
             "gRPC listen address, host:port or unix:PATH; repeat the flag or comma-separate for several",
             _listen_list, "ADDR"),
    _Setting("basin_endpoint", "--basin-endpoint", "S2_BASIN_ENDPOINT",
             "S2 basin endpoint URL: https://{basin}.b.s2.dev/v1 for hosted S2, or one URL that takes the "
             "s2-basin header. Unset: start the embedded emulator and read from it", _basin_endpoint, "URL"),
    _Setting("encryption_keys_dir", "--encryption-keys-dir", "S2_SIDECAR_ENCRYPTION_KEYS_DIR",
             "directory of encryption keys for encrypted streams (a mounted Secret): a file named after "
             "a basin holds its key, streams.json maps {basin: {stream: key}}; an app's s2-encryption-key "
             "metadata wins for its call", _keys_dir, "DIR"),
    _Setting("default_basin", "--default-basin", "S2_SIDECAR_DEFAULT_BASIN",
             "basin used when a request leaves `basin` empty", _basin, "BASIN"),
    _Setting("emulator_listen", "--emulator-listen", "S2_SIDECAR_EMULATOR_LISTEN",
             "where the embedded emulator listens when no basin endpoint is set", _host_port, "HOST:PORT"),
    _Setting("emulator_data_dir", "--emulator-data-dir", "S2_SIDECAR_EMULATOR_DATA_DIR",
             "keep the embedded emulator's streams in this directory (unset: in memory)", metavar="DIR"),
    _Setting("admin_listen", "--admin-listen", "S2_SIDECAR_ADMIN_LISTEN",
             "admin HTTP listener (/healthz, /readyz, /metrics); 'off' disables it", _optional_addr,
             "HOST:PORT"),
    _Setting("session_connections", "--session-connections", "S2_SIDECAR_SESSION_CONNECTIONS",
             "upstream connections for sessions (each open session holds one)", _positive(int), "N"),
    _Setting("unary_connections", "--unary-connections", "S2_SIDECAR_UNARY_CONNECTIONS",
             "upstream connections for Read without wait and CheckTail", _positive(int), "N"),
    _Setting("long_poll_connections", "--long-poll-connections", "S2_SIDECAR_LONG_POLL_CONNECTIONS",
             "upstream connections for Read with wait (each waiting Read holds one); past it a long poll "
             "waits for one within its deadline, and other calls never wait on long polls", _positive(int), "N"),
    _Setting("max_pending_calls", "--max-pending-calls", "S2_SIDECAR_MAX_PENDING_CALLS",
             "calls that may arrive at once before the sidecar takes them up (a burst of apps starting "
             "together); past it gRPC ends new calls CANCELLED", _positive(int), "N"),
    _Setting("connect_timeout", "--connect-timeout", "S2_SIDECAR_CONNECT_TIMEOUT",
             "seconds to connect to the upstream", _positive(float), "SECONDS"),
    _Setting("request_timeout", "--request-timeout", "S2_SIDECAR_REQUEST_TIMEOUT",
             "seconds for an upstream unary request, on top of any long-poll wait", _positive(float), "SECONDS"),
    _Setting("heartbeat_timeout", "--heartbeat-timeout", "S2_SIDECAR_HEARTBEAT_TIMEOUT",
             "seconds of upstream session silence (no batch, no heartbeat) before reconnecting",
             _positive(float), "SECONDS"),
    _Setting("upstream_format", "--upstream-format", "S2_SIDECAR_UPSTREAM_FORMAT",
             "protobuf (protobuf reads, s2s sessions; falls back to SSE if s2s is refused) or json "
             "(JSON reads, SSE sessions)", _enum(UpstreamFormat), "FORMAT"),
    _Setting("upstream_protocol", "--upstream-protocol", "S2_SIDECAR_UPSTREAM_PROTOCOL",
             "auto (HTTP/2 where TLS ALPN offers it, as S2's SDKs do; HTTP/1.1 for http:// and when ALPN "
             "picks http/1.1), http1 (aiohttp, one connection per open session), or http2 (every session "
             "and call multiplexed over few connections; h2c with prior knowledge for http://)",
             _enum(UpstreamProtocol), "PROTOCOL"),
    _Setting("upstream_ca_file", "--upstream-ca-file", "S2_SIDECAR_UPSTREAM_CA_FILE",
             "PEM file of extra CA certificates to trust for https:// upstreams, on top of the system "
             "store (SSL_CERT_FILE is honoured too)", _ca_file, "FILE"),
    _Setting("upstream_h2_connections", "--upstream-h2-connections", "S2_SIDECAR_UPSTREAM_H2_CONNECTIONS",
             "most HTTP/2 connections per upstream host; another opens only when the server's "
             "max concurrent streams is reached", _positive(int), "N"),
    _Setting("retry_attempts", "--retry-attempts", "S2_SIDECAR_RETRY_ATTEMPTS",
             "upstream retries in a row before giving up (reset by each delivered batch)", _positive(int), "N"),
    _Setting("retry_base_delay", "--retry-base-delay", "S2_SIDECAR_RETRY_BASE_DELAY",
             "first retry delay in seconds; doubles per failure up to 1 s, plus jitter (S2's policy)",
             _positive(float), "SECONDS"),
    _Setting("tail_max_staleness", "--tail-max-staleness", "S2_SIDECAR_TAIL_MAX_STALENESS",
             "seconds a cached tail may be old for CheckTail (a request's max_staleness_ms overrides it)",
             _non_negative, "SECONDS"),
    _Setting("tail_cache_size", "--tail-cache-size", "S2_SIDECAR_TAIL_CACHE_SIZE",
             "streams whose tail is cached (least recently used are forgotten)", _positive(int), "N"),
    _Setting("share_sessions", "--share-sessions", "S2_SIDECAR_SHARE_SESSIONS",
             "share one upstream session among ReadSessions that follow the same stream live (true/false)",
             _bool, "BOOL"),
    _Setting("history_cache_bytes", "--history-cache-bytes", "S2_SIDECAR_HISTORY_CACHE_BYTES",
             "bytes of records below the tail kept to answer replays without reading S2 again (0: off)",
             _cache_bytes, "BYTES"),
    _Setting("history_cache_max_age", "--history-cache-max-age", "S2_SIDECAR_HISTORY_CACHE_MAX_AGE",
             "seconds the history cache may serve a stream's records after S2 last confirmed them: the "
             "bound on serving a record after a trim, retention or deletion removed it", _positive(float),
             "SECONDS"),
    _Setting("subscriber_queue", "--subscriber-queue", "S2_SIDECAR_SUBSCRIBER_QUEUE",
             "batches a shared-session subscriber may fall behind before it moves to its own session",
             _positive(int), "N"),
    _Setting("max_message_bytes", "--max-message-bytes", "S2_SIDECAR_MAX_MESSAGE_BYTES",
             "largest gRPC message sent to apps, in bytes (at least 3 MiB; apps must accept it: "
             "gRPC clients take 4 MiB by default); larger batches are split at record boundaries",
             _message_bytes, "BYTES"),
    _Setting("grace_period", "--grace-period", "S2_SIDECAR_GRACE_PERIOD",
             "seconds to drain on SIGTERM before cancelling what is left", _positive(float), "SECONDS"),
    _Setting("unix_socket_mode", "--unix-socket-mode", "S2_SIDECAR_UNIX_SOCKET_MODE",
             "permissions of unix: sockets, octal", _octal_mode, "MODE"),
    _Setting("log_level", "--log-level", "S2_SIDECAR_LOG_LEVEL", "debug, info, warning or error",
             _choice("debug", "info", "warning", "error"), "LEVEL"),
    _Setting("log_format", "--log-format", "S2_SIDECAR_LOG_FORMAT", "text or json", _choice("text", "json"),
             "FORMAT"),
    _Setting("access_log", "--access-log", "S2_SIDECAR_ACCESS_LOG",
             "log one line per API call (method, stream, status, duration) (true/false)", _bool, "BOOL"),
    _Setting("unhealthy_after", "--unhealthy-after", "S2_SIDECAR_UNHEALTHY_AFTER",
             "seconds the upstream may be unreachable before gRPC health turns NOT_SERVING",
             _positive(float), "SECONDS"),
    _Setting("ready_requires_upstream", "--ready-requires-upstream", "S2_SIDECAR_READY_REQUIRES_UPSTREAM",
             "/readyz also fails while the upstream refuses TCP connections (true/false); off by default, so "
             "an S2 outage does not take every app pod out of its Services", _bool, "BOOL"),
)  # fmt: skip

# A valid value for each setting, shown after what was wrong with an invalid one.
EXAMPLES: Mapping[str, str] = {
    "listen": "127.0.0.1:50051 or unix:/run/s2-sidecar/sidecar.sock",
    "basin_endpoint": "https://{basin}.b.s2.dev/v1, or http://127.0.0.1:8080/v1 with the basin in s2-basin",
    "default_basin": "my-basin-01",
    "encryption_keys_dir": "/etc/s2-sidecar/encryption-keys",
    "emulator_listen": "127.0.0.1:8080",
    "emulator_data_dir": "/var/lib/s2-sidecar",
    "admin_listen": "127.0.0.1:9090, or off",
    "upstream_format": "protobuf",
    "upstream_protocol": "auto",
    "upstream_ca_file": "/etc/ssl/certs/my-ca.pem",
    "share_sessions": "true",
    "history_cache_bytes": str(256 * 1024 * 1024) + " (256 MiB), or 0 to turn it off",
    "access_log": "false",
    "ready_requires_upstream": "false",
    "max_message_bytes": str(DEFAULT_MAX_MESSAGE_BYTES),
    "unix_socket_mode": "0600",
    "log_level": "info",
    "log_format": "json",
}


def _default_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and value == 0o600:
        return "0600"
    return "unset" if value is None else str(value)


def add_arguments(parser: argparse.ArgumentParser, *, only: Sequence[str] | None = None) -> None:
    """Add one flag per setting (or per setting named in `only`); help shows the variable and the default."""
    defaults = Config()
    for s in SETTINGS:
        if only is not None and s.name not in only:
            continue
        env = f" [env {s.env}]" if s.env else ""
        kwargs: dict[str, Any] = {
            "dest": s.name,
            "metavar": s.metavar,
            "default": None,
            "help": f"{s.help} (default: {_default_text(getattr(defaults, s.name))}){env}",
        }
        if s.name == "listen":
            kwargs["action"] = "append"
        parser.add_argument(s.flag, **kwargs)


def from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
    """Flags win over environment variables, which win over defaults. Raises ValueError."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = getattr(args, s.name, None)
        source = s.flag
        if s.name == "listen" and raw is not None:
            raw = ",".join(raw)
        if raw is None and s.env and environ.get(s.env, "") != "":
            raw, source = environ[s.env], s.env
        if raw is None:
            continue
        try:
            values[s.name] = s.parse(raw)
        except ValueError as e:
            raise ValueError(_invalid(s, source, raw, e)) from None
    # Secrets come from the environment only: flags show up in `ps` and shell history.
    if token := environ.get("S2_ACCESS_TOKEN"):
        values["access_token"] = token
    if (app_token := environ.get("S2_SIDECAR_APP_TOKEN")) is not None:
        if not app_token.strip():
            # Set but empty (an unfilled Secret, a blank `export`): serving without authentication
            # would be a silent downgrade of what the operator asked for.
            raise ValueError(
                "invalid S2_SIDECAR_APP_TOKEN: it is set but empty, which would turn app authentication "
                "off; set it to the token apps must send as `authorization: Bearer <token>`, or unset it"
            )
        values["app_token"] = app_token
    return Config(**values)


def _invalid(s: _Setting, source: str, raw: str, problem: ValueError) -> str:
    """One line: where the value came from (and the other way to set it), the value, what is wrong
    with it, and a valid one."""
    if source == s.flag:
        where = f"{s.flag} {raw!r}" + (f" (or env {s.env})" if s.env else "")
    else:
        where = f"{s.env}={raw!r} (or flag {s.flag})"
    message = str(problem)
    example = EXAMPLES.get(s.name) or ("30" if s.metavar == "SECONDS" else "100" if s.metavar == "N" else None)
    return f"invalid {where}: {message}" + (f"; for example {example}" if example else "")
