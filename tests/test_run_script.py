"""`scripts/run` as users run it: its emulator's streams survive a restart (kept in .data/emulator
in the checkout), and `--memory` keeps them in memory only.

The script runs from a copy of `scripts/` in a temporary checkout, with `scripts/bootstrap` a no-op
and `.venv/bin/s2-sidecar` this Python's `-m sidecar`: what is tested is the script itself (its
arguments, its data folder, its `exec`), without installing anything into the shared venv."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.testing import free_port
from tests.test_server import curl_append

REPO = Path(__file__).resolve().parents[1]


def _checkout(root: Path) -> Path:
    (root / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "run", root / "scripts" / "run")
    (root / ".venv" / "bin").mkdir(parents=True)
    for path, text in (
        (root / "scripts" / "bootstrap", "#!/bin/sh\nexit 0\n"),
        (root / ".venv" / "bin" / "s2-sidecar", f'#!/bin/sh\nexec {sys.executable} -m sidecar "$@"\n'),
    ):
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return root


@asynccontextmanager
async def run_script(root: Path, *args: str, ports: tuple[int, int]) -> AsyncIterator[list[str]]:
    """`scripts/run` until the block ends, then SIGTERM; yields the lines it printed so far."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S2_BASIN", "S2_SIDECAR_"))}
    env["PYTHONPATH"] = str(REPO)
    grpc_port, emulator_port = ports
    proc = await asyncio.create_subprocess_exec(
        str(root / "scripts" / "run"), "--listen", f"127.0.0.1:{grpc_port}",
        "--emulator-listen", f"127.0.0.1:{emulator_port}", "--admin-listen", "off", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while not any("serving gRPC on" in line for line in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "scripts/run ended before it served:\n" + "".join(lines)
            lines.append(line.decode())
        while not any(line.startswith("emulator data:") for line in lines):  # the banner follows
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 10)).decode())
        yield lines
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await proc.stdout.read()


async def _read_bodies(grpc_port: int, stream: str) -> list[bytes]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = stream_pb2_grpc.StreamServiceStub(channel)
        resp = await stub.Read(pb.ReadRequest(stream=stream, seq_num=0), timeout=10)
        return [r.body for r in resp.records]


async def test_streams_survive_a_restart_of_scripts_run(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    ports = (free_port(), free_port())
    async with run_script(root, ports=ports) as banner:
        assert f"emulator data: {root / '.data' / 'emulator'} (kept across restarts)\n" in banner
        for body in ("one", "two"):
            await curl_append(f"http://127.0.0.1:{ports[1]}", "local-basin", "kept", body)
        assert await _read_bodies(ports[0], "kept") == [b"one", b"two"]
    assert (root / ".data" / "emulator").is_dir()
    async with run_script(root, ports=ports):
        assert await _read_bodies(ports[0], "kept") == [b"one", b"two"]
        await curl_append(f"http://127.0.0.1:{ports[1]}", "local-basin", "kept", "three")
        assert await _read_bodies(ports[0], "kept") == [b"one", b"two", b"three"]


async def test_memory_flag_keeps_nothing_across_a_restart(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    ports = (free_port(), free_port())
    async with run_script(root, "--memory", ports=ports) as banner:
        assert any(line.startswith("emulator data: in memory") for line in banner), banner
        await curl_append(f"http://127.0.0.1:{ports[1]}", "local-basin", "gone", "one")
    assert not (root / ".data").exists()
    async with (
        run_script(root, "--memory", ports=ports),
        grpc.aio.insecure_channel(f"127.0.0.1:{ports[0]}") as channel,
    ):
        stub = stream_pb2_grpc.StreamServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Read(pb.ReadRequest(stream="gone", seq_num=0), timeout=10)
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND


def _bootstrap_checkout(root: Path) -> Path:
    """A checkout with the real `scripts/bootstrap`, its inputs, and a `.venv/bin/python` that logs
    each `pip` run to `pip.log` (and fails it when `pip.fail` exists) instead of installing."""
    (root / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "bootstrap", root / "scripts" / "bootstrap")
    shutil.copytree(REPO / "requirements", root / "requirements")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / ".venv" / "bin").mkdir(parents=True)
    python = root / ".venv" / "bin" / "python"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = -m ] && [ "$2" = pip ]; then\n'
        f'  echo "$*" >>{root}/pip.log; [ ! -e {root}/pip.fail ]; exit $?\n'
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    sidecar = root / ".venv" / "bin" / "s2-sidecar"
    sidecar.write_text("#!/bin/sh\nexit 0\n")
    for path in (python, sidecar, root / "scripts" / "bootstrap"):
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return root


async def _bootstrap(root: Path, *args: str, in_scripts: bool = False) -> tuple[int, list[str]]:
    if in_scripts:  # as `cd scripts && ./bootstrap`
        proc = await asyncio.create_subprocess_exec("./bootstrap", *args, cwd=root / "scripts")
    else:
        proc = await asyncio.create_subprocess_exec(root / "scripts" / "bootstrap", *args, cwd=root)
    rc = await proc.wait()
    log = root / "pip.log"
    return rc, log.read_text().splitlines() if log.exists() else []


async def test_bootstrap_runs_pip_only_when_what_it_installs_changed(tmp_path: Path) -> None:
    root = _bootstrap_checkout(tmp_path)
    rc, runs = await _bootstrap(root)
    assert rc == 0 and len(runs) == 3, runs  # pip + setuptools, the lock, the project (editable)
    assert "requirements/run.txt" in runs[1] and runs[2].endswith("-e .")
    assert (await _bootstrap(root)) == (0, runs)  # a second start: nothing installed, no pip at all
    rc, more = await _bootstrap(root, "test")  # another lock: installed once
    assert rc == 0 and len(more) == 6 and "requirements/test.txt" in more[4]
    with (root / "requirements" / "run.txt").open("a") as lock:
        lock.write("# a changed lock\n")
    rc, again = await _bootstrap(root)
    assert rc == 0 and len(again) == 9 and "requirements/run.txt" in again[7]


async def test_a_failed_bootstrap_is_retried_at_the_next_start(tmp_path: Path) -> None:
    root = _bootstrap_checkout(tmp_path)
    (root / "pip.fail").touch()
    rc, runs = await _bootstrap(root)
    assert rc != 0 and len(runs) == 1
    (root / "pip.fail").unlink()
    rc, runs = await _bootstrap(root)
    assert rc == 0 and len(runs) == 4
    assert (await _bootstrap(root)) == (0, runs)


async def test_bootstrap_runs_by_a_relative_path_from_another_folder(tmp_path: Path) -> None:
    root = _bootstrap_checkout(tmp_path)
    rc, runs = await _bootstrap(root, in_scripts=True)  # it changes to the checkout's root first
    assert rc == 0 and len(runs) == 3, runs
