"""Structured logs: `text` for people, `json` (one object per line) for collectors, both with the
current trace and span ids and with registered secrets scrubbed.

Fields of a JSON line: `time` (RFC 3339, UTC, milliseconds), `level` (`debug`...`critical`),
`logger`, `message`, `exception` (the traceback, when any), `trace_id` / `span_id` (hex, when a
valid span is current), then any `extra={...}` fields the caller passed (the access log's). Text
lines append the same extras and ids as `key=value`.

Scrubbing is defence in depth: code must still never log a token. `register_secret()` the access
token (and the app token) at start-up; every rendered line, exception text included, then shows
`***` in their place.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import IO, Any, Final

from opentelemetry import trace

ACCESS_LOGGER: Final = "s2_sidecar.access"  # one line per API call
REDACTED: Final = "***"
LEVELS: Final = ("debug", "info", "warning", "error", "critical")

_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None

# Attributes every LogRecord has: anything else came from `extra=`.
_STANDARD_ATTRS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def register_secret(secret: str | None) -> None:
    """Scrub `secret` from every line rendered from now on. Empty or None is ignored."""
    global _secret_re
    if not secret or secret in _secrets:
        return
    _secrets.add(secret)
    # Longest first, so a secret that contains another is replaced whole.
    _secret_re = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))


def clear_secrets() -> None:
    """Forget the registered secrets (tests)."""
    global _secret_re
    _secrets.clear()
    _secret_re = None


def scrub(text: str) -> str:
    pattern = _secret_re
    return text if pattern is None else pattern.sub(REDACTED, text)


def _trace_ids() -> tuple[str, str] | None:
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


def _extras(record: logging.LogRecord) -> Iterable[tuple[str, Any]]:
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            yield key, value


class TextFormatter(logging.Formatter):
    """`2025-01-02T03:04:05.678Z INFO logger: message key=value trace_id=... span_id=...`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _rfc3339(record.created)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        parts = [f"{k}={v}" for k, v in _extras(record)]
        if ids := _trace_ids():
            parts += [f"trace_id={ids[0]}", f"span_id={ids[1]}"]
        return f"{line} {' '.join(parts)}" if parts else line

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = scrub(record.exc_text)
        if record.stack_info:
            entry["stack"] = scrub(self.formatStack(record.stack_info))
        if ids := _trace_ids():
            entry["trace_id"], entry["span_id"] = ids
        for key, value in _extras(record):
            entry.setdefault(key, scrub(value) if isinstance(value, str) else value)
        # Scrub the rendered line too: a secret inside a non-string extra is caught here.
        return scrub(json.dumps(entry, default=str, ensure_ascii=False))


def _rfc3339(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class _SidecarHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler `setup_logging` installed, so a second call replaces it."""


def setup_logging(level: str, fmt: str, *, stream: IO[str] | None = None) -> None:
    """Send the root logger's records at `level` and above to `stream` (default: stderr at call
    time) as `fmt` (`text` or `json`). Other handlers (pytest's, say) are left alone; a previous
    call's handler is replaced. Raises ValueError for an unknown level or format."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, got {fmt!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _SidecarHandler)]:
        root.removeHandler(old)
        old.close()
    handler = _SidecarHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
