"""The Go example (`clients/go`) built offline against Debian's Go packages and run against a
real sidecar. Needs `clients/go/install-toolchain.sh` first; skips (saying why) without Go."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.clients import cli_scenarios
from tests.clients.conftest import ROOT, Live

GO_DIR = ROOT / "clients" / "go"


def _missing() -> str | None:
    if not shutil.which("go"):
        return "go is not installed: run clients/go/install-toolchain.sh"
    for pkg in ("google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto"):
        if not (Path("/usr/share/gocode/src") / pkg).is_dir():
            return f"Debian's {pkg} sources are missing: run clients/go/install-toolchain.sh"
    return None


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("go") / "s2sidecar-example"
    result = subprocess.run([GO_DIR / "build.sh", out], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"go build failed:\n{result.stdout}\n{result.stderr}"
    yield out


@pytest.fixture
def cmd_for(binary: Path) -> Callable[[str], list[str]]:
    return lambda address: [str(binary), "-addr", address]


@pytest.mark.parametrize("scenario", cli_scenarios.SCENARIOS, ids=lambda f: f.__name__)
async def test_go_example(scenario, cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await scenario(cmd_for(live.address), live, stream)


async def test_go_example_over_a_unix_socket(cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await cli_scenarios.unix_socket(cmd_for, live, stream)


async def test_go_example_with_an_app_token(cmd_for: Callable[[str], list[str]], token_live: Live, stream: str) -> None:
    await cli_scenarios.app_token(cmd_for, token_live, stream)
