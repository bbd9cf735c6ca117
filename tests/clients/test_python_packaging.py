"""The Python client installs as Python packages do: `python -m build` makes a
wheel and an sdist with metadata, typed (py.typed, the stubs' .pyi), versioned with the sidecar;
the wheel installed in a clean venv reads from a real sidecar."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.clients.conftest import CLIENT, ROOT, Live


def test_the_client_is_versioned_with_the_sidecar() -> None:
    sidecar = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    client = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]["version"]
    assert client == sidecar


def test_the_wheel_is_typed_and_has_metadata(dist: Path) -> None:
    (wheel,) = dist.glob("s2sidecar_client-*.whl")
    (sdist,) = dist.glob("s2sidecar_client-*.tar.gz")
    assert sdist.stat().st_size > 0
    names = zipfile.ZipFile(wheel).namelist()
    assert "s2sidecar_client/py.typed" in names
    assert "s2sidecar_client/_proto/s2sidecar/v1/stream_pb2.pyi" in names
    meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = zipfile.ZipFile(wheel).read(meta_name).decode()
    for field in ("Name: s2sidecar-client", "Requires-Python: >=3.11", "Requires-Dist: grpcio",
                  "Classifier: Typing :: Typed", "License-Expression: Apache-2.0"):  # fmt: skip
        assert field in meta, field
    assert "## Sidecar restarts" in meta  # the README is the long description


@pytest.mark.timeout(600)
async def test_the_wheel_installs_in_a_clean_venv_and_reads(dist: Path, tmp_path: Path, live: Live, stream: str) -> None:
    (wheel,) = await asyncio.to_thread(lambda: list(dist.glob("s2sidecar_client-*.whl")))
    venv = tmp_path / "venv"
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    result = await asyncio.to_thread(
        subprocess.run, [py, "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True, timeout=500
    )
    assert result.returncode == 0, result.stderr[-3000:]
    await live.fill(stream)
    script = (
        "import asyncio, s2sidecar_client as c\n"
        "async def main():\n"
        f"    async with c.S2SidecarClient({live.address!r}) as client:\n"
        "        await client.wait_for_ready(timeout=10)\n"
        f"        batch = await client.read({stream!r}, start=c.SeqNum(0), limit=c.ReadLimit(count=3))\n"
        "        print(c.__version__, [r.body.decode() for r in batch.records])\n"
        "asyncio.run(main())\n"
    )
    # cwd away from the repository, so nothing but the installed wheel can be imported
    result = await asyncio.to_thread(
        subprocess.run, [py, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    version = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]["version"]
    assert result.stdout.strip() == f"{version} ['record-0', 'record-1', 'record-2']"
