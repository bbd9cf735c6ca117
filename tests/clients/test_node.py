"""The Node.js client (`clients/node`): its `node --test` unit tests (resume logic, and the session
loop against a scripted in-process fake server), the example CLI against a real sidecar, and the
auto-resume driver across real sidecar restarts (tests/clients/restarts.py). Installs the locked
dependencies once (`npm ci` into clients/node/node_modules, gitignored); skips if node/npm are
missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.clients import cli_scenarios, restarts
from tests.clients.conftest import ROOT, Live

NODE_DIR = ROOT / "clients" / "node"


@pytest.fixture(scope="module")
def node_ready() -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed for the Node.js client")
    lock = NODE_DIR / "package-lock.json"
    stamp = NODE_DIR / "node_modules" / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture
def node(node_ready: None) -> str:
    path = shutil.which("node")
    assert path is not None
    return path


@pytest.fixture
def cmd_for(node: str) -> Callable[[str], list[str]]:
    return lambda address: [node, str(NODE_DIR / "example.js"), "-addr", address]


@pytest.fixture
def driver(node: str) -> restarts.DriverCmd:
    def cmd(address: str, stream: str, start: int, count: int | None) -> list[str]:
        argv = [node, str(NODE_DIR / "restart-reader.js"), "--addr", address, "--stream", stream]
        argv += ["--start-seq-num", str(start)]
        return argv + (["--count", str(count)] if count is not None else [])

    return cmd


def test_node_unit_tests(node: str) -> None:
    """`node --test`: clients/node/test/*.test.js (no sidecar: the fakes run in-process)."""
    result = subprocess.run([node, "--test"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"node --test failed:\n{result.stdout}\n{result.stderr}"
    assert re.search(r"^# pass [1-9]", result.stdout, re.M), result.stdout  # it found the tests


@pytest.mark.parametrize("scenario", cli_scenarios.SCENARIOS, ids=lambda f: f.__name__)
async def test_node_example(scenario, cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await scenario(cmd_for(live.address), live, stream)


async def test_node_example_over_a_unix_socket(cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await cli_scenarios.unix_socket(cmd_for, live, stream)


async def test_node_example_with_an_app_token(
    cmd_for: Callable[[str], list[str]], token_live: Live, stream: str
) -> None:
    await cli_scenarios.app_token(cmd_for, token_live, stream)


@pytest.mark.timeout(600)
async def test_node_catch_up_and_follow_across_sidecar_restarts(driver: restarts.DriverCmd) -> None:
    await restarts.catch_up_and_follow_across_restarts(driver)


async def test_node_missing_stream_fails_at_once(driver: restarts.DriverCmd) -> None:
    await restarts.missing_stream_fails_at_once(driver)
