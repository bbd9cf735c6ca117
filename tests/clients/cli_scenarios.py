"""The same scenarios for every example program with the shared command line

    PROGRAM -addr ADDR read   -stream S [-seq-num N | -timestamp T | -tail-offset K] [-count C] [-until U]
    PROGRAM -addr ADDR follow -stream S [start] [-count C] [-until U] [-n N]
    PROGRAM -addr ADDR tail   -stream S

which print one JSON object per line (a record, {"tail": ...}, or {"error": ...} then exit 2).
Used by every client's tests; numbers may be JSON numbers or strings (int64 as text)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from tests.clients.conftest import APP_TOKEN, BASE_TS, KEY, N_RECORDS, SEALED_BASIN, WRONG_KEY, Live


async def run(
    cmd: Sequence[str], *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> tuple[int, list[dict[str, Any]], str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert proc.returncode is not None
    return proc.returncode, lines, err.decode()


def seqs(lines: list[dict[str, Any]]) -> list[int]:
    return [int(r["seq_num"]) for r in lines]


async def read_batch_from_seq_num_0(cmd: Sequence[str], live: Live, stream: str) -> None:
    await live.fill(stream)
    code, lines, err = await run(cmd, "read", "-stream", stream, "-seq-num", "0", "-count", "100")
    assert code == 0, err
    assert seqs(lines) == list(range(N_RECORDS))
    assert [r["body"] for r in lines] == [f"record-{i}" for i in range(N_RECORDS)]
    assert int(lines[4]["timestamp"]) == BASE_TS + 4000


async def follow_from_tail_offset_sees_a_later_append(cmd: Sequence[str], live: Live, stream: str) -> None:
    await live.fill(stream)
    proc = await asyncio.create_subprocess_exec(
        *cmd, "follow", "-stream", stream, "-tail-offset", "10", "-n", "11",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        lines = []
        for _ in range(10):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, (await proc.stderr.read()).decode()
            lines.append(json.loads(line))
        assert seqs(lines) == list(range(10, 20))
        await live.append(stream, [{"body": "live"}])  # after the session started and caught up
        last = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert (int(last["seq_num"]), last["body"]) == (20, "live")
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def start_at_a_timestamp(cmd: Sequence[str], live: Live, stream: str) -> None:
    await live.fill(stream)
    code, lines, err = await run(cmd, "read", "-stream", stream, "-timestamp", str(BASE_TS + 5000), "-count", "3")
    assert code == 0, err
    assert seqs(lines) == [5, 6, 7]
    code, lines, err = await run(cmd, "follow", "-stream", stream, "-timestamp", str(BASE_TS + 17500), "-n", "2")
    assert code == 0, err
    assert seqs(lines) == [18, 19]


async def stop_until_a_timestamp(cmd: Sequence[str], live: Live, stream: str) -> None:
    await live.fill(stream)
    code, lines, err = await run(cmd, "read", "-stream", stream, "-seq-num", "0", "-until", str(BASE_TS + 8000))
    assert code == 0, err
    assert seqs(lines) == list(range(8))
    # a session with a stop ends by itself (no -n)
    code, lines, err = await run(cmd, "follow", "-stream", stream, "-seq-num", "2", "-until", str(BASE_TS + 5000))
    assert code == 0, err
    assert seqs(lines) == [2, 3, 4]


async def check_tail(cmd: Sequence[str], live: Live, stream: str) -> None:
    await live.fill(stream)
    code, lines, err = await run(cmd, "tail", "-stream", stream)
    assert code == 0, err
    tail = lines[0]["tail"]
    assert (int(tail["seq_num"]), int(tail["timestamp"])) == (N_RECORDS, BASE_TS + 19000)


async def typed_errors(cmd: Sequence[str], live: Live, stream: str) -> None:
    for args in (["read", "-seq-num", "0", "-count", "100"], ["tail"], ["follow", "-seq-num", "0"]):
        code, lines, err = await run(cmd, args[0], "-stream", stream, *args[1:])
        assert code == 2, (args, lines, err)
        assert lines[-1]["error"] == "NotFound", lines
        assert lines[-1]["reason"] == "stream_not_found", lines
    await live.fill(stream, 3)
    code, lines, _ = await run(cmd, "read", "-stream", stream, "-seq-num", "9")
    assert code == 2 and lines[-1]["error"] == "OutOfRange"
    assert int(lines[-1]["tail_seq_num"]) == 3
    code, lines, _ = await run(cmd, "read", "-stream", "..", "-seq-num", "0")
    assert code == 2 and lines[-1]["error"] == "InvalidArgument" and lines[-1]["field"] == "stream"


async def unix_socket(cmd_for: Any, live: Live, stream: str) -> None:
    """`cmd_for(address)` gives the program's command for another address."""
    await live.fill(stream, 2)
    code, lines, err = await run(cmd_for(f"unix:{live.socket_path}"), "tail", "-stream", stream)
    assert code == 0, err
    assert int(lines[0]["tail"]["seq_num"]) == 2


async def app_token(cmd_for: Any, token_live: Live, stream: str) -> None:
    """Against a sidecar with S2_SIDECAR_APP_TOKEN: UNAUTHENTICATED without the token, served with it
    (the examples read the token from the environment, as users would set it)."""
    await token_live.fill(stream, 2)
    cmd = cmd_for(token_live.address)
    for args in (["tail"], ["follow", "-seq-num", "0", "-n", "2"]):
        code, lines, _ = await run(cmd, args[0], "-stream", stream, *args[1:], env={"S2_SIDECAR_APP_TOKEN": ""})
        assert code == 2 and lines[-1]["error"] == "Unauthenticated", lines
        code, lines, err = await run(
            cmd, args[0], "-stream", stream, *args[1:], env={"S2_SIDECAR_APP_TOKEN": APP_TOKEN}
        )
        assert code == 0, (lines, err)
    assert seqs(lines) == [0, 1]


async def encrypted_stream(cmd_for: Any, live: Live, stream: str) -> None:
    """An encrypted stream (docs/encryption.md), read and followed by a program whose
    `-encryption-key K` (before the command) is the client's key, handed to it as the raw bytes, and
    `-call-encryption-key K` (after it) that call's, handed over as the base64 string: either
    reads; the call's wins over the client's both ways; a wrong key is PermissionDenied, none
    FailedPrecondition, a malformed one InvalidArgument, and no output shows a key. `tail` needs none."""
    written = await live.fill_sealed(stream)
    malformed = KEY[:-4]
    cases: list[tuple[str | None, str | None, str | None]] = [  # client key, call key, error
        (KEY, None, None),
        (None, KEY, None),
        (WRONG_KEY, KEY, None),
        (KEY, WRONG_KEY, "PermissionDenied"),
        (WRONG_KEY, None, "PermissionDenied"),
        (None, None, "FailedPrecondition"),
        (None, malformed, "InvalidArgument"),
    ]
    for command in (["read", "-seq-num", "0"], ["follow", "-seq-num", "0", "-n", "3"]):
        for client_key, call_key, error in cases:
            cmd = cmd_for(live.address) + (["-encryption-key", client_key] if client_key else [])
            args = [command[0], "-basin", SEALED_BASIN, "-stream", stream, *command[1:]]
            args += ["-call-encryption-key", call_key] if call_key else []
            code, lines, err = await run(cmd, *args)
            what = (command[0], client_key == KEY, call_key == KEY, lines, err)
            if error is None:
                assert code == 0, what
                assert [r["body"] for r in lines] == written, what
            else:
                assert code == 2 and lines[-1]["error"] == error, what
            shown = json.dumps(lines) + err
            assert not any(k in shown for k in (KEY, WRONG_KEY, malformed)), what
    code, lines, err = await run(cmd_for(live.address), "tail", "-basin", SEALED_BASIN, "-stream", stream)
    assert code == 0 and int(lines[0]["tail"]["seq_num"]) == len(written), (lines, err)


SCENARIOS = [
    read_batch_from_seq_num_0,
    follow_from_tail_offset_sees_a_later_append,
    start_at_a_timestamp,
    stop_until_a_timestamp,
    check_tail,
    typed_errors,
]


async def first_call_waits_for_a_late_sidecar(cmd_for: Callable[[str], list[str]]) -> None:
    """An app that starts before its sidecar: the example's first call, with retries off
    (`-no-retry`), starts while nothing listens; it must wait for the connection (gRPC's
    wait-for-ready) and end with the sidecar's answer (NOT_FOUND for a missing stream), not
    UNAVAILABLE."""
    from sidecar.testing import SidecarProcess, free_port

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *cmd_for(f"127.0.0.1:{port}"), "-no-retry", "tail", "-stream", "no-such-stream",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await asyncio.sleep(1.0)
        assert proc.returncode is None, "the call did not wait for the sidecar"
        async with SidecarProcess(grpc_port=port):
            out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert proc.returncode == 2 and lines, err.decode()
    assert (lines[-1]["error"], lines[-1].get("reason")) == ("NotFound", "stream_not_found"), lines
