"""The Go client (`clients/go`), built in module mode: its own unit and fake-server tests
(`go test ./...`), the example CLI's shared scenarios against a real sidecar, and the restart
driver under tests/clients/restarts.py. Needs Go (the `go` line of clients/go/go.mod) and the
modules (`clients/go/install-toolchain.sh` downloads them); skips, saying why, without Go."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.clients import cli_scenarios, restarts
from tests.clients.conftest import ROOT, Live

GO_DIR = ROOT / "clients" / "go"


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("go"):
        pytest.skip("go is not installed (see clients/go/README.md)")
    out = tmp_path_factory.mktemp("go")
    result = subprocess.run([GO_DIR / "build.sh", out], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"build.sh failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.fixture
def cmd_for(bin_dir: Path) -> Callable[[str], list[str]]:
    return lambda address: [str(bin_dir / "s2sidecar-example"), "-addr", address]


def driver(bin_dir: Path) -> restarts.DriverCmd:
    def cmd(address: str, stream: str, start: int, count: int | None) -> list[str]:
        argv = [str(bin_dir / "s2sidecar-restart-reader"), "--addr", address, "--stream", stream]
        argv += ["--start-seq-num", str(start)]
        return argv if count is None else [*argv, "--count", str(count)]

    return cmd


def test_go_unit_tests(bin_dir: Path) -> None:
    """The pure resume logic and the client's loops against a scripted in-process StreamService."""
    result = subprocess.run(
        ["go", "test", "-count=1", "-timeout=120s", "./..."], cwd=GO_DIR, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"go test failed:\n{result.stdout}\n{result.stderr}"
    assert "ok  \tgithub.com/s2-sidecar/s2-sidecar/clients/go/s2sidecar" in result.stdout, result.stdout


@pytest.mark.parametrize("scenario", cli_scenarios.SCENARIOS, ids=lambda f: f.__name__)
async def test_go_example(scenario, cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await scenario(cmd_for(live.address), live, stream)


async def test_go_example_over_a_unix_socket(cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await cli_scenarios.unix_socket(cmd_for, live, stream)


async def test_go_example_with_an_app_token(cmd_for: Callable[[str], list[str]], token_live: Live, stream: str) -> None:
    await cli_scenarios.app_token(cmd_for, token_live, stream)


@pytest.mark.timeout(600)
async def test_go_catch_up_and_follow_across_sidecar_restarts(bin_dir: Path) -> None:
    """A 100,000-record catch-up and a live follower, both under the same 10 stops."""
    await restarts.catch_up_and_follow_across_restarts(driver(bin_dir))


@pytest.mark.timeout(120)
async def test_go_missing_stream_fails_at_once(bin_dir: Path) -> None:
    await restarts.missing_stream_fails_at_once(driver(bin_dir))
