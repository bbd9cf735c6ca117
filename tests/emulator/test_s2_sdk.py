"""S2's own Python SDK (`s2-sdk`, HTTP/2 only) against the emulator, with the SDK's default
settings, over h2c (prior knowledge) and over TLS (ALPN h2, a trustme CA through SSL_CERT_FILE).

The SDK runs in its own venv (`.tools/s2-sdk-venv`, made on first use from PyPI; or the
interpreter named by S2_SDK_PYTHON): it pins protobuf < 7 and registers its own `s2.v1` protobuf
package, so it can share neither the project's venv nor a process with the sidecar.
`sdk_driver.py` does the calls and prints what it saw.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.emulator import Emulator, EmulatorConfig

from .helpers import make_tls

SDK_REQUIREMENT = "s2-sdk==0.13.0"
ROOT = Path(__file__).resolve().parents[2]
SDK_VENV = ROOT / ".tools" / "s2-sdk-venv"
DRIVER = Path(__file__).with_name("sdk_driver.py")
BASIN = "sdk-basin-1"  # S2's defaults: streams exist only once created


def sdk_python() -> Path:
    """An interpreter with `s2-sdk` installed (made once, then reused)."""
    if given := os.environ.get("S2_SDK_PYTHON"):
        return Path(given)
    python, marker = SDK_VENV / "bin" / "python", SDK_VENV / "installed.txt"
    lock = (ROOT / "requirements" / "s2-sdk.txt").read_text()  # SDK_REQUIREMENT, by hash
    if not (python.exists() and marker.exists() and marker.read_text() == lock):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(SDK_VENV)], check=True, timeout=120)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--require-hashes",
             "-r", str(ROOT / "requirements" / "s2-sdk.txt")],
            check=True,
            timeout=600,
        )  # fmt: skip
        marker.write_text(lock)
    return python


@pytest.fixture(scope="module")
def sdk() -> Path:
    return sdk_python()


@pytest.fixture(scope="module", params=["h2c", "tls"])
async def sdk_run(
    request: pytest.FixtureRequest, sdk: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Any]]:
    """Run the driver once per transport against a fresh emulator; yields what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2_")}
    config = EmulatorConfig(port=0, basins={BASIN: None}, heartbeat_min=0.2, heartbeat_max=0.3)
    if request.param == "tls":
        tls = make_tls(tmp_path_factory.mktemp("tls"))
        config = dataclasses.replace(config, tls_cert=tls.cert, tls_key=tls.key)
        env["SSL_CERT_FILE"] = str(tls.ca)  # the SDK's ssl.create_default_context() honours it
    async with Emulator(config) as emu:
        env["S2_ACCOUNT_ENDPOINT"] = env["S2_BASIN_ENDPOINT"] = emu.url
        proc = await asyncio.create_subprocess_exec(
            str(sdk), str(DRIVER), BASIN, f"t-{uuid.uuid4().hex[:8]}",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()[-3000:]
        result = json.loads(out)
        result["url"], result["transport"] = emu.url, request.param
        yield result


def test_sdk_creates_a_stream_and_appends(sdk_run: dict[str, Any]) -> None:
    assert sdk_run["url"].startswith("https://" if sdk_run["transport"] == "tls" else "http://")
    assert sdk_run["created"].endswith("-sdk")
    assert [p[0] for p in sdk_run["append"]] == [0, 2]
    assert sdk_run["append_session"] == [[2, 3], [3, 4], [4, 5]]  # one ack per input, in order
    assert sdk_run["check_tail"] == 5


def test_sdk_reads(sdk_run: dict[str, Any]) -> None:
    assert sdk_run["read"] == [
        [0, "one", []],
        [1, "two", [["h", "v"]]],
        [2, "s0", []],
        [3, "s1", []],
        [4, "s2", []],
    ]


def test_sdk_read_sessions_bounded_and_live(sdk_run: dict[str, Any]) -> None:
    assert sdk_run["bounded_session"] == ["two", "s0", "s1"]
    assert sdk_run["live_session"] == ["s2", "live"]


def test_sdk_errors(sdk_run: dict[str, Any]) -> None:
    assert sdk_run["missing"] == [404, "stream_not_found"]
    status, tail = sdk_run["unwritten"]
    assert status == 416 and tail[0] == 6  # the tail, after the live record
    assert sdk_run["unwritten_session"] == [416, 6]


def test_sdk_control_plane(sdk_run: dict[str, Any]) -> None:
    """`ensure_*` need `s2-provision-result` (the SDK raises without it), `reconfigure_*` a PATCH:
    both as s2-lite answers them (lite/src/handlers/v1/streams.rs, basins.rs)."""
    assert sdk_run["ensure_stream"] == ["created", "config-unchanged", "config-updated"]
    assert sdk_run["reconfigure_stream"] == 3600
    assert sdk_run["ensure_basin"] == ["created", "config-unchanged", "config-updated"]
    assert sdk_run["reconfigure_basin"] == [True, True]
