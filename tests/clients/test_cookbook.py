"""Runs every command of docs/grpcurl.md against a live sidecar, in document order.

Each command in a ```sh block may be followed by marker comments:

    # expect: TEXT                              TEXT must appear in stdout + stderr
    # expect-exit: N                            the exit code (0 when absent)
    # test: append {"body":"x"} to STREAM after 1s   append that record while the command runs
    # test: sidecar with S2_SIDECAR_APP_TOKEN     run against a second sidecar that requires an app
                                                token (its data set up by the document's first
                                                command), with that variable set in the shell

Before running, the documented addresses are swapped for the live sidecar's: `127.0.0.1:50051`
(gRPC), `localhost:8080` (emulator), `/tmp/s2-sidecar.sock` (unix socket); the stream `orders`
becomes a fresh name. Commands run in `bash -o pipefail` with `.venv/bin` first on PATH.
jq: commands that pipe into jq are skipped when jq is not installed (`apt-get install -y jq`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.clients.conftest import APP_TOKEN, ROOT, Live

COOKBOOK = ROOT / "docs" / "grpcurl.md"
ADDRESS = "127.0.0.1:50051"
EMULATOR = "localhost:8080"
SOCKET = "/tmp/s2-sidecar.sock"
STREAM = "orders"


@dataclass
class Command:
    line: int
    text: str
    expect: list[str] = field(default_factory=list)
    exit_code: int = 0
    append: tuple[str, str, float] | None = None  # (record JSON, stream, delay)
    app_token: bool = False

    @property
    def id(self) -> str:
        words = self.text.split()
        method = next((w for w in words if "/" in w and "." in w and not w.startswith(("'", "/"))), words[0])
        return f"L{self.line}-{method.rsplit('/', 1)[-1]}"


def _complete(text: str) -> bool:
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text, comments=False)
    except ValueError:  # an open quote: the command goes on
        return False
    return True


def parse(markdown: str) -> list[Command]:
    commands: list[Command] = []
    in_block = False
    current: list[str] = []
    start = 0
    for n, line in enumerate(markdown.splitlines(), 1):
        if line.startswith("```"):
            in_block = line.strip() == "```sh" if not in_block else False
            continue
        if not in_block:
            continue
        if current:
            current.append(line)
            if _complete("\n".join(current)):
                commands.append(Command(start, "\n".join(current)))
                current = []
            continue
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            assert commands, f"line {n}: a marker before any command"
            cmd = commands[-1]
            if m := re.fullmatch(r"# expect: (.+)", stripped):
                cmd.expect.append(m.group(1))
            elif m := re.fullmatch(r"# expect-exit: (\d+)", stripped):
                cmd.exit_code = int(m.group(1))
            elif m := re.fullmatch(r"# test: append (\{.*\}) to (\S+) after ([\d.]+)s", stripped):
                cmd.append = (m.group(1), m.group(2), float(m.group(3)))
            elif stripped == "# test: sidecar with S2_SIDECAR_APP_TOKEN":
                cmd.app_token = True
            else:
                raise AssertionError(f"line {n}: unknown marker {stripped!r}")
            continue
        current, start = [line], n
        if _complete(line):
            commands.append(Command(n, line))
            current = []
    assert not current, f"unterminated command at line {start}"
    return commands


COMMANDS = parse(COOKBOOK.read_text())


def test_every_grpcurl_command_has_an_expectation() -> None:
    grpcurls = [c for c in COMMANDS if "grpcurl" in c.text]
    assert len(grpcurls) >= 20
    for c in COMMANDS:
        assert c.expect, f"docs/grpcurl.md line {c.line}: add a `# expect:` marker"


@pytest.fixture(scope="module")
def cookbook_stream() -> str:
    return f"orders-cookbook-{os.getpid()}"


def _localize(text: str, live: Live, stream: str) -> str:
    return (
        text.replace(ADDRESS, live.address)
        .replace(EMULATOR, live.emulator_url.removeprefix("http://"))
        .replace(SOCKET, live.socket_path)
        .replace(STREAM, stream)
    )


async def _shell(text: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "S2_SIDECAR_APP_TOKEN": APP_TOKEN,
    }
    return await asyncio.create_subprocess_exec(
        "bash", "-o", "pipefail", "-c", text,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip


_token_ready: set[str] = set()


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c.id)
async def test_cookbook_command(
    cmd: Command, live: Live, optional_token_live: Live | None, cookbook_stream: str
) -> None:
    if re.search(r"\|\s*jq\b", cmd.text) and not shutil.which("jq"):
        pytest.fail("jq is not installed (apt-get install -y jq; scripts/install-test-tools does)", pytrace=False)
    if cmd.app_token:
        if optional_token_live is None:
            pytest.skip("this sidecar does not enforce S2_SIDECAR_APP_TOKEN")
        live = optional_token_live
    if cmd.app_token and cookbook_stream not in _token_ready:
        # the app-token sidecar has its own emulator: stage the same data with the first command
        setup = await _shell(_localize(COMMANDS[0].text, live, cookbook_stream))
        out, _ = await setup.communicate()
        assert setup.returncode == 0, out.decode()
        _token_ready.add(cookbook_stream)
    text = _localize(cmd.text, live, cookbook_stream)
    proc = await _shell(text)
    if cmd.append is not None:
        record, stream, delay = cmd.append
        await asyncio.sleep(delay)
        await live.append(stream.replace(STREAM, cookbook_stream), [json.loads(record)])
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    output = out.decode(errors="replace")
    where = f"docs/grpcurl.md line {cmd.line}:\n$ {text}\n{output}"
    assert proc.returncode == cmd.exit_code, f"exit code {proc.returncode}, expected {cmd.exit_code}\n{where}"
    for expected in cmd.expect:
        assert expected in output, f"missing {expected!r}\n{where}"
