"""S2's naming rules for basins and streams."""

from __future__ import annotations

import re

_BASIN_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


def basin_name_problem(name: str) -> str | None:
    """Why `name` is not a valid basin name, or None if it is."""
    if not 8 <= len(name) <= 48:
        return f"basin name must be 8-48 characters, got {len(name)}"
    if not _BASIN_RE.fullmatch(name):
        return "basin name must use only a-z, 0-9 and '-', and start and end with a letter or digit"
    return None


def stream_name_problem(name: str) -> str | None:
    """Why `name` is not a valid stream name, or None if it is.

    S2 (common/src/types/stream.rs `StreamNameStr::validate_str`): 1-512 bytes of UTF-8, not "." or
    "..", and no NUL bytes (api/src/v1/stream/mod.rs `CreateStreamRequest`: "must not contain NUL
    bytes"). Anything else is a valid name, newlines, spaces, "/" and any Unicode included: paths
    carry it percent-encoded.
    """
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "stream name must be valid UTF-8"
    if not 1 <= size <= 512:
        return f"stream name must be 1-512 bytes, got {size}"
    if name in (".", ".."):
        return "stream name must not be '.' or '..'"
    if "\x00" in name:
        return "stream name must not contain NUL"
    return None
