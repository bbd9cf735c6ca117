"""The Go client (`clients/go`), built in module mode: its own unit and fake-server tests
(`go test ./...`), the example CLI's shared scenarios against a real sidecar, and the restart
driver under tests/clients/restarts.py. Needs Go (the `go` line of clients/go/go.mod) and the
modules (`clients/go/install-toolchain.sh` downloads them); skips, saying why, without Go.
Also: the module builds offline from the committed go.sum, and the first call of an app started
before its sidecar waits for it."""

from __future__ import annotations

import os
import re
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
        pytest.fail("go is not installed (see clients/go/README.md)", pytrace=False)
    out = tmp_path_factory.mktemp("go")
    result = subprocess.run([GO_DIR / "build.sh", out], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"build.sh failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.fixture
def cmd_for(bin_dir: Path) -> Callable[[str], list[str]]:
    return lambda address: [str(bin_dir / "s2sidecar-example"), "-addr", address]


def driver(bin_dir: Path) -> restarts.DriverCmd:
    return restarts.driver_cmd(str(bin_dir / "s2sidecar-restart-reader"))


def offline_env() -> dict[str, str]:
    """No network: only the module cache (filled by install-toolchain.sh) and go.sum."""
    return {**os.environ, "GOFLAGS": "-mod=readonly", "GOPROXY": "off", "GOTOOLCHAIN": "local"}


def test_go_module_builds_offline_from_the_committed_go_sum(bin_dir: Path) -> None:
    """A module that builds in module mode, offline, pinned by a committed go.sum."""
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "clients/go/go.mod", "clients/go/go.sum"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert tracked.returncode == 0, f"go.mod/go.sum are not committed: {tracked.stderr}"
    env = offline_env()
    result = subprocess.run(["go", "build", "./..."], cwd=GO_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"offline module build failed (run clients/go/install-toolchain.sh):\n{result.stdout}\n{result.stderr}"
    )
    verify = subprocess.run(["go", "mod", "verify"], cwd=GO_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert verify.returncode == 0 and "all modules verified" in verify.stdout, f"{verify.stdout}\n{verify.stderr}"


def test_go_readme_wait_snippet_is_the_compiled_example() -> None:
    """The README's WaitForReady snippet is ExampleClient_WaitForReady's body (which `go test` compiles)."""
    readme = (GO_DIR / "README.md").read_text()
    snippets = [b for b in re.findall(r"```go\n(.*?)```", readme, re.S) if "WaitForReady(ctx)" in b]
    assert snippets, "the README shows no WaitForReady snippet"
    example = (GO_DIR / "s2sidecar" / "example_test.go").read_text()
    body = example.split("func ExampleClient_WaitForReady() {", 1)[1].split("\n}\n", 1)[0]
    body_lines = {line.strip() for line in body.splitlines()}
    missing = [line for line in snippets[0].splitlines() if line.strip() and line.strip() not in body_lines]
    assert not missing, f"README lines not in ExampleClient_WaitForReady: {missing}"


async def test_go_first_call_waits_for_a_sidecar_that_starts_later(cmd_for: Callable[[str], list[str]]) -> None:
    await cli_scenarios.first_call_waits_for_a_late_sidecar(cmd_for)


def test_go_unit_tests(bin_dir: Path) -> None:
    """The pure resume logic and the client's loops against a scripted in-process StreamService,
    including a fake sidecar that starts late (calls wait for it; WaitForReady names the target)."""
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


async def test_go_example_reads_an_encrypted_stream(
    cmd_for: Callable[[str], list[str]], live: Live, stream: str
) -> None:
    await cli_scenarios.encrypted_stream(cmd_for, live, stream)


async def test_go_example_with_an_app_token(cmd_for: Callable[[str], list[str]], token_live: Live, stream: str) -> None:
    await cli_scenarios.app_token(cmd_for, token_live, stream)


@pytest.mark.timeout(600)
async def test_go_catch_up_and_follow_across_sidecar_restarts(bin_dir: Path) -> None:
    """A 100,000-record catch-up and a live follower, both under the same 10 stops."""
    await restarts.catch_up_and_follow_across_restarts(driver(bin_dir))


@pytest.mark.timeout(120)
async def test_go_missing_stream_fails_at_once(bin_dir: Path) -> None:
    await restarts.missing_stream_fails_at_once(driver(bin_dir))


@pytest.mark.timeout(120)
async def test_go_session_keeps_its_key_across_sidecar_restarts(bin_dir: Path) -> None:
    await restarts.encrypted_session_across_restarts(driver(bin_dir))
