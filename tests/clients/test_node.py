"""The Node.js example (`clients/node`) against a real sidecar. Installs its locked dependencies
once (`npm ci` into clients/node/node_modules, gitignored); skips if node/npm are missing."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.clients import cli_scenarios
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
def cmd_for(node_ready: None) -> Callable[[str], list[str]]:
    node = shutil.which("node")
    assert node is not None
    return lambda address: [node, str(NODE_DIR / "example.js"), "-addr", address]


@pytest.mark.parametrize("scenario", cli_scenarios.SCENARIOS, ids=lambda f: f.__name__)
async def test_node_example(scenario, cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await scenario(cmd_for(live.address), live, stream)


async def test_node_example_over_a_unix_socket(cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await cli_scenarios.unix_socket(cmd_for, live, stream)


async def test_node_example_with_an_app_token(
    cmd_for: Callable[[str], list[str]], token_live: Live, stream: str
) -> None:
    await cli_scenarios.app_token(cmd_for, token_live, stream)
