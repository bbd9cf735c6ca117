"""The Python client reads encrypted streams through a real sidecar (docs/encryption.md):
the key given to the client (bytes or base64 str) goes with every `read` and `read_session`, a
call's own key wins over it, and a wrong, missing or malformed key gets its status, never
echoing the key. Resumes keep the key: test_python_resume_restarts.py."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from s2sidecar_client import (
    Conflict,
    InvalidArgument,
    PermissionDenied,
    ReadBatch,
    S2SidecarClient,
    S2SidecarSyncClient,
    SeqNum,
    SidecarError,
)

from tests.clients.conftest import KEY, KEY_BYTES, SEALED_BASIN, WRONG_KEY, Live


def bodies(batches: list[ReadBatch]) -> list[str]:
    return [r.body.decode() for b in batches for r in b.records]


async def session(client: S2SidecarClient, stream: str, n: int, encryption_key: bytes | str | None = None) -> list[str]:
    """The first `n` records of a session from seq_num 0."""
    out: list[ReadBatch] = []
    async with client.read_session(stream, start=SeqNum(0), encryption_key=encryption_key) as s:
        async for batch in s:
            out.append(batch)
            if len(bodies(out)) >= n:
                break
    return bodies(out)


@pytest.mark.parametrize("key", [KEY_BYTES, KEY], ids=["bytes", "base64"])
async def test_the_clients_key_reads_and_follows(live: Live, stream: str, key: bytes | str) -> None:
    written = await live.fill_sealed(stream)
    async with S2SidecarClient(live.address, SEALED_BASIN, encryption_key=key) as client:
        assert bodies([await client.read(stream, start=SeqNum(0))]) == written
        assert await asyncio.wait_for(session(client, stream, 3), 30) == written
        assert (await client.check_tail(stream)).seq_num == 3  # sends no key: S2 needs none for tails


async def test_a_calls_key_wins_over_the_clients(live: Live, stream: str) -> None:
    written = await live.fill_sealed(stream)
    async with S2SidecarClient(live.address, SEALED_BASIN, encryption_key=WRONG_KEY) as client:
        assert bodies([await client.read(stream, start=SeqNum(0), encryption_key=KEY_BYTES)]) == written
        assert await asyncio.wait_for(session(client, stream, 3, encryption_key=KEY), 30) == written
        with pytest.raises(PermissionDenied):  # the client's own key is still the wrong one
            await client.read(stream, start=SeqNum(0))
    async with S2SidecarClient(live.address, SEALED_BASIN) as client:
        assert bodies([await client.read(stream, start=SeqNum(0), encryption_key=KEY)]) == written


async def test_wrong_missing_and_malformed_keys_get_their_statuses(live: Live, stream: str) -> None:
    await live.fill_sealed(stream)
    async with S2SidecarClient(live.address, SEALED_BASIN) as client:
        cases: list[tuple[str | None, type[SidecarError], grpc.StatusCode]] = [
            (WRONG_KEY, PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
            (None, Conflict, grpc.StatusCode.FAILED_PRECONDITION),
            (KEY[:-4], InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        ]
        for key, cls, code in cases:
            for call in ("read", "session"):
                with pytest.raises(cls) as err:
                    if call == "read":
                        await client.read(stream, start=SeqNum(0), encryption_key=key)
                    else:
                        await asyncio.wait_for(session(client, stream, 1, encryption_key=key), 30)
                assert err.value.code == code, (key, call, err.value)
                shown = f"{err.value} {err.value!r} {err.value.trailers} {err.value.metadata}"
                assert "s2-encryption-key" in err.value.message or code != grpc.StatusCode.FAILED_PRECONDITION
                assert not key or key not in shown, shown
        assert KEY not in repr(client)


async def test_the_sync_client_reads_with_its_key_and_a_calls(live: Live, stream: str) -> None:
    written = await live.fill_sealed(stream)

    def run() -> tuple[list[str], list[str], grpc.StatusCode]:
        with S2SidecarSyncClient(live.address, SEALED_BASIN, encryption_key=KEY_BYTES) as client:
            read = bodies([client.read(stream, start=SeqNum(0))])
            followed = bodies(list(client.read_session(stream, start=SeqNum(0), wait=1, encryption_key=KEY)))
            try:
                client.read(stream, start=SeqNum(0), encryption_key=WRONG_KEY)
            except SidecarError as e:
                return read, followed, e.code
        raise AssertionError("a wrong key read records")

    assert await asyncio.to_thread(run) == (written, written, grpc.StatusCode.PERMISSION_DENIED)


def test_a_key_grpc_cannot_carry_is_refused_without_showing_it() -> None:
    with pytest.raises(TypeError, match="bytes or a base64 str, not list") as err:
        S2SidecarSyncClient("127.0.0.1:1", encryption_key=[KEY])  # type: ignore[arg-type]
    assert KEY not in str(err.value)
    with pytest.raises(ValueError, match="printable ASCII") as bad:
        S2SidecarSyncClient("127.0.0.1:1", encryption_key=KEY[:-1] + "\u00e9")
    assert KEY[:-1] not in str(bad.value)
