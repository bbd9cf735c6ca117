"""Read query parameters both ways, and S2's errors for bad ones."""

from urllib.parse import parse_qsl

import pytest
from multidict import MultiDict

from sidecar.errors import S2Error
from sidecar.types import ReadLimit, ReadQuery, SeqNum, TailOffset, Timestamp
from sidecar.wire.query import from_params, to_params


def test_round_trip() -> None:
    q = ReadQuery(SeqNum(5), ReadLimit(count=10, bytes=100), until=99, clamp=True, wait=3)
    assert to_params(q) == {"seq_num": "5", "count": "10", "bytes": "100", "until": "99", "clamp": "true", "wait": "3"}
    assert from_params(to_params(q)) == q


def test_default_start_is_the_tail() -> None:
    assert from_params({}) == ReadQuery(TailOffset(0))
    assert to_params(ReadQuery()) == {"tail_offset": "0"}


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"seq_num": "1", "timestamp": "2"}, 422, "invalid"),
        ({"seq_num": "1", "tail_offset": "2"}, 422, "invalid"),
        ({"timestamp": "5", "until": "5"}, 422, "invalid"),
        ({"seq_num": "-1"}, 400, "bad_query"),
        ({"count": "x"}, 400, "bad_query"),
        ({"clamp": "yes"}, 400, "bad_query"),
        ({"wait": str(2**32)}, 400, "bad_query"),
    ],
)
def test_bad_params(params: dict[str, str], status: int, code: str) -> None:
    with pytest.raises(S2Error) as info:
        from_params(params)
    assert (info.value.status, info.value.code) == (status, code)


def test_timestamp_before_until_is_fine() -> None:
    assert from_params({"timestamp": "4", "until": "5"}).start == Timestamp(4)


@pytest.mark.parametrize(
    "query", ["seq_num=0&seq_num=1", "seq_num=0&seq_num=0", "count=1&seq_num=0&count=2", "clamp=true&clamp=true"]
)
def test_a_repeated_read_parameter_is_refused(query: str) -> None:
    """S2 deserializes the query into a struct (serde_urlencoded), which takes each field once: s2-lite
    0.43.4 answers `400 bad_query` "Failed to deserialize query string: duplicate field `seq_num`"."""
    with pytest.raises(S2Error) as info:
        from_params(MultiDict(parse_qsl(query)))
    assert (info.value.status, info.value.code) == (400, "bad_query")
    assert "duplicate field" in info.value.message


def test_unknown_parameters_may_repeat() -> None:
    # S2 ignores query parameters its struct has no field for, however often they come.
    assert from_params(MultiDict(parse_qsl("foo=1&foo=2&seq_num=3"))).start == SeqNum(3)
