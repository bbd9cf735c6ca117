"""A read's query string: `ReadQuery` to S2's query parameters and back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sidecar.errors import S2Error
from sidecar.types import U32_MAX, U64_MAX, ReadLimit, ReadQuery, ReadStart, SeqNum, TailOffset, Timestamp


def to_params(query: ReadQuery) -> dict[str, str]:
    """Query parameters for `GET /v1/streams/{stream}/records`."""
    params: dict[str, str] = {}
    match query.start:
        case SeqNum(v):
            params["seq_num"] = str(v)
        case Timestamp(v):
            params["timestamp"] = str(v)
        case TailOffset(v):
            params["tail_offset"] = str(v)
    if query.limit.count is not None:
        params["count"] = str(query.limit.count)
    if query.limit.bytes is not None:
        params["bytes"] = str(query.limit.bytes)
    if query.until is not None:
        params["until"] = str(query.until)
    if query.clamp:
        params["clamp"] = "true"
    if query.wait is not None:
        params["wait"] = str(query.wait)
    return params


READ_PARAMS = frozenset({"seq_num", "timestamp", "tail_offset", "count", "bytes", "until", "clamp", "wait"})


def refuse_repeated(pairs: Iterable[tuple[str, str]], names: frozenset[str]) -> None:
    """S2 deserializes a query string into a struct, which takes each field once: a second `name=`
    among `names` is `400 bad_query` (serde's "duplicate field"); parameters it does not know may
    repeat. `pairs` in order, repeats included (a multidict's `items()`)."""
    seen: set[str] = set()
    for name, _ in pairs:
        if name in names:
            if name in seen:
                raise S2Error(400, "bad_query", f"Failed to deserialize query string: duplicate field `{name}`")
            seen.add(name)


def _uint(params: Mapping[str, str], name: str, maximum: int) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > maximum:
        raise S2Error(400, "bad_query", f"invalid `{name}`: expected an integer from 0 to {maximum}")
    return int(raw)


def from_params(params: Mapping[str, str]) -> ReadQuery:
    """Parse S2 read parameters; raises `S2Error` with S2's status and code for bad ones. From a
    multidict (`request.query`), a read parameter given twice is refused as S2 refuses it."""
    refuse_repeated(params.items(), READ_PARAMS)
    starts: list[ReadStart] = []
    if (v := _uint(params, "seq_num", U64_MAX)) is not None:
        starts.append(SeqNum(v))
    if (v := _uint(params, "timestamp", U64_MAX)) is not None:
        starts.append(Timestamp(v))
    if (v := _uint(params, "tail_offset", U64_MAX)) is not None:  # S2: a u64, saturating at 0
        starts.append(TailOffset(v))
    if len(starts) > 1:
        raise S2Error(422, "invalid", "only one of `seq_num`, `timestamp` or `tail_offset` may be given")
    clamp_raw = params.get("clamp")
    if clamp_raw not in (None, "true", "false"):
        raise S2Error(400, "bad_query", "invalid `clamp`: expected true or false")
    query = ReadQuery(
        start=starts[0] if starts else TailOffset(0),
        limit=ReadLimit(count=_uint(params, "count", U64_MAX), bytes=_uint(params, "bytes", U64_MAX)),
        until=_uint(params, "until", U64_MAX),
        clamp=clamp_raw == "true",
        wait=_uint(params, "wait", U32_MAX),
    )
    if isinstance(query.start, Timestamp) and query.until is not None and query.start.value >= query.until:
        raise S2Error(422, "invalid", "`timestamp` must be less than `until`")
    return query
