"""S2's JSON bodies: records, batches, tails, appends and error bodies, in both `s2-format`s."""

from __future__ import annotations

import base64
import binascii
import json
from enum import Enum
from typing import Any

from sidecar.errors import ProtocolError, RangeNotSatisfiable, S2Error
from sidecar.types import U64_MAX, AppendRecord, Record, StreamPosition


class Format(Enum):
    """`s2-format`: how header names, values and bodies are carried in JSON strings."""

    RAW = "raw"  # UTF-8 text (lossy for binary data)
    BASE64 = "base64"  # standard padded base64

    @classmethod
    def from_header(cls, value: str | None) -> Format:
        """Parse the `s2-format` header (aliases `json`, `json-binsafe`); S2's 400 otherwise."""
        match value:
            case None | "raw" | "json":
                return cls.RAW
            case "base64" | "json-binsafe":
                return cls.BASE64
        raise S2Error(400, "bad_header", f"invalid `s2-format` header {value!r}: expected raw or base64")

    def encode(self, data: bytes) -> str:
        if self is Format.BASE64:
            return base64.b64encode(data).decode("ascii")
        return data.decode("utf-8", "replace")

    def decode(self, text: str) -> bytes:
        if self is Format.BASE64:
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("not valid base64") from None
        return text.encode("utf-8", "surrogatepass")


def position_to_json(pos: StreamPosition) -> dict[str, int]:
    return {"seq_num": pos.seq_num, "timestamp": pos.timestamp}


def _u64(value: Any) -> int:
    """A JSON u64: an integer from 0 to 2^64-1 (not a float, not a bool), else ValueError."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= U64_MAX:
        return value
    raise ValueError(f"expected an integer from 0 to 2^64-1, got {value!r:.40}")


def position_from_json(obj: Any) -> StreamPosition:
    try:
        return StreamPosition(_u64(obj["seq_num"]), _u64(obj["timestamp"]))
    except (KeyError, TypeError, ValueError):
        raise ProtocolError(f"malformed stream position in upstream JSON: {obj!r:.200}") from None


def record_to_json(record: Record, fmt: Format) -> dict[str, Any]:
    """One `SequencedRecord`; empty headers and body are left out, as S2 does."""
    out: dict[str, Any] = {"seq_num": record.seq_num, "timestamp": record.timestamp}
    if record.headers:
        out["headers"] = [[fmt.encode(n), fmt.encode(v)] for n, v in record.headers]
    if record.body:
        out["body"] = fmt.encode(record.body)
    return out


def batch_to_json(records: list[Record], tail: StreamPosition | None, fmt: Format) -> dict[str, Any]:
    out: dict[str, Any] = {"records": [record_to_json(r, fmt) for r in records]}
    if tail is not None:
        out["tail"] = position_to_json(tail)
    return out


def batch_from_json(obj: Any, fmt: Format) -> tuple[list[Record], StreamPosition | None]:
    """Parse a JSON `ReadBatch` from upstream; `ProtocolError` if it is not one."""
    try:
        records = [
            Record(
                seq_num=_u64(r["seq_num"]),
                timestamp=_u64(r["timestamp"]),
                headers=tuple((fmt.decode(h[0]), fmt.decode(h[1])) for h in r.get("headers") or ()),
                body=fmt.decode(r.get("body") or ""),
            )
            for r in obj["records"]
        ]
        tail = position_from_json(obj["tail"]) if obj.get("tail") is not None else None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise ProtocolError(f"malformed JSON ReadBatch from upstream: {e!r:.200}") from None
    return records, tail


def tail_to_json(tail: StreamPosition) -> dict[str, Any]:
    """Body of `GET .../records/tail`, and of a 416."""
    return {"tail": position_to_json(tail)}


def stream_incarnation_from_json(obj: Any, stream: str) -> str | None:
    """From a stream listing (`GET /v1/streams?prefix=<stream>`): the `created_at` of the stream
    named exactly `stream` (its incarnation), or None when it is not listed or is being deleted
    (`deleted_at` set)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("streams"), list):
        raise ProtocolError(f"upstream stream listing has no `streams` list: {str(obj)[:200]}")
    for info in obj["streams"]:
        if isinstance(info, dict) and info.get("name") == stream:
            created = info.get("created_at")
            if not isinstance(created, str) or not created:
                raise ProtocolError(f"upstream stream listing gives {stream!r} no `created_at`")
            return None if info.get("deleted_at") else created
    return None


def loads(data: bytes | str) -> Any:
    """`json.loads` that raises `ProtocolError` (for upstream bodies)."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"malformed JSON from upstream: {e}") from None


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def error_body(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def error_from_response(status: int, body: bytes, retry_after_ms: int | None = None) -> S2Error:
    """Turn an error answer into an `S2Error`, tolerating bodies that are not S2's JSON."""
    try:
        obj = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        obj = {}
    if not isinstance(obj, dict):
        obj = {}
    if status == 416 and isinstance(obj.get("tail"), dict):
        return RangeNotSatisfiable(position_from_json(obj["tail"]))
    code = str(obj.get("code") or f"http_{status}")
    message = str(obj.get("message") or body[:200].decode("utf-8", "replace") or f"HTTP {status}")
    return S2Error(status, code, message, retry_after_ms)


def append_input_from_json(obj: Any, fmt: Format) -> tuple[list[AppendRecord], int | None, str | None]:
    """Parse a JSON `AppendInput`; raises S2's `400 bad_json` on shape errors."""
    try:
        if not isinstance(obj, dict) or not isinstance(obj.get("records"), list):
            raise ValueError("expected an object with a `records` array")
        records = []
        for r in obj["records"]:
            if not isinstance(r, dict):
                raise ValueError("each record must be an object")
            headers = r.get("headers") or []
            if not isinstance(headers, list) or any(
                not isinstance(h, list) or len(h) != 2 or not all(isinstance(x, str) for x in h) for h in headers
            ):
                raise ValueError("`headers` must be a list of [name, value] string pairs")
            body = r.get("body") or ""
            ts = r.get("timestamp")
            if not isinstance(body, str) or (ts is not None and (not isinstance(ts, int) or ts < 0)):
                raise ValueError("`body` must be a string and `timestamp` a non-negative integer")
            records.append(
                AppendRecord(
                    body=fmt.decode(body),
                    headers=tuple((fmt.decode(n), fmt.decode(v)) for n, v in headers),
                    timestamp=ts,
                )
            )
        match = obj.get("match_seq_num")
        token = obj.get("fencing_token")
        if match is not None and (not isinstance(match, int) or match < 0):
            raise ValueError("`match_seq_num` must be a non-negative integer")
        if token is not None and not isinstance(token, str):
            raise ValueError("`fencing_token` must be a string")
    except ValueError as e:
        raise S2Error(400, "bad_json", f"invalid append body: {e}") from None
    return records, match, token


def append_input_to_json(
    records: list[AppendRecord],
    fmt: Format,
    match_seq_num: int | None = None,
    fencing_token: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"records": []}
    for r in records:
        rec: dict[str, Any] = {"body": fmt.encode(r.body)}
        if r.headers:
            rec["headers"] = [[fmt.encode(n), fmt.encode(v)] for n, v in r.headers]
        if r.timestamp is not None:
            rec["timestamp"] = r.timestamp
        out["records"].append(rec)
    if match_seq_num is not None:
        out["match_seq_num"] = match_seq_num
    if fencing_token is not None:
        out["fencing_token"] = fencing_token
    return out
