"""The Python client and S2's Python SDK (`s2-sdk`, which pins protobuf < 7) install in one venv
with one pip resolution, at the versions requirements/s2-sdk.txt locks, and work in one process:
an app appends with the SDK to the emulator and reads the records back through the sidecar with
the client. The client's stubs are protobuf 6.31.1 gencode for this (tools/genproto.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import BASIN, ROOT, Live

SDK_LOCK = ROOT / "requirements" / "s2-sdk.txt"

APP = """
import asyncio, json, sys
import google.protobuf
import s2sidecar_client as c
from s2_sdk import S2, AppendInput, Endpoints, Record

basin, stream, address = sys.argv[1:]

async def main():
    async with S2("any-token", endpoints=Endpoints.from_env()) as s2:
        await s2.basin(basin).create_stream(stream)
        ack = await s2.basin(basin).stream(stream).append(
            AppendInput(records=[Record(body=f"sdk-{i}".encode(), headers=[(b"k", b"v")]) for i in range(3)])
        )
    async with c.S2SidecarClient(address, basin=basin) as client:
        await client.wait_for_ready(timeout=10)
        batch = await client.read(stream, start=c.SeqNum(0), limit=c.ReadLimit(count=10))
    print(json.dumps({
        "protobuf": google.protobuf.__version__,
        "ack_end": ack.end.seq_num,
        "read": [[r.seq_num, r.body.decode(), [[k.decode(), v.decode()] for k, v in r.headers]] for r in batch.records],
    }))

asyncio.run(main())
"""


def _locked() -> dict[str, str]:
    """name -> version, as requirements/s2-sdk.txt pins them."""
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", SDK_LOCK.read_text(), re.M))


def test_the_lock_pins_a_protobuf_the_client_accepts() -> None:
    # the point of this file: the SDK's protobuf (6.x) is inside the client's range
    locked = _locked()
    assert locked["protobuf"].startswith("6."), locked
    assert '"protobuf>=6.31.1,<8"' in (ROOT / "clients" / "python" / "pyproject.toml").read_text()


@pytest.mark.timeout(600)
async def test_one_venv_appends_with_s2_sdk_and_reads_with_the_client(
    dist: Path, tmp_path: Path, live: Live, stream: str
) -> None:
    (wheel,) = await asyncio.to_thread(lambda: list(dist.glob("s2sidecar_client-*.whl")))
    venv = tmp_path / "venv"
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    # One resolution of both, held to the SDK lock's versions (as constraints: the client's own
    # dependencies are not in that lock, so it cannot be used as a --require-hashes file here).
    locked = _locked()
    constraints = tmp_path / "s2-sdk-constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in locked.items()))
    install = [py, "-m", "pip", "install", "-q", str(wheel), f"s2-sdk=={locked['s2-sdk']}", "-c", str(constraints)]
    result = await asyncio.to_thread(subprocess.run, install, capture_output=True, text=True, timeout=500)
    assert result.returncode == 0, result.stderr[-3000:]
    alone = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the venv's packages only
    check = await asyncio.to_thread(
        subprocess.run, [py, "-m", "pip", "check"], capture_output=True, text=True, env=alone
    )
    assert check.returncode == 0, check.stdout + check.stderr

    env = {k: v for k, v in os.environ.items() if not k.startswith("S2_")}
    env["S2_ACCOUNT_ENDPOINT"] = env["S2_BASIN_ENDPOINT"] = live.emulator_url
    # cwd away from the repository, so nothing but what pip installed can be imported
    result = await asyncio.to_thread(
        subprocess.run, [py, "-c", APP, BASIN, stream, live.address],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["protobuf"] == locked["protobuf"]
    assert out["ack_end"] == 3
    assert out["read"] == [[i, f"sdk-{i}", [["k", "v"]]] for i in range(3)]
