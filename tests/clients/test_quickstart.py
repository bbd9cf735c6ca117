"""Every client's README quick start, run as written: its steps (tests/clients/quickstart.py says
how they are read) run in order in a new, empty folder outside the repository, with `S2_SIDECAR`
set to this checkout, the app files written there, and the language's own package manager
installing the client from the checkout as the README says. The app reads the record the quick
start appended, through a real sidecar on the embedded emulator.

Only addresses and the stream's name are swapped, for the live sidecar's and a name no other test
uses: `127.0.0.1:50051` (also reached through `S2_SIDECAR_ADDRESS`, which every client reads),
`localhost:8080` (the emulator) and `greetings`."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.clients.conftest import ROOT, Live
from tests.clients.quickstart import File, Step, parse

LANGUAGES = ("python", "node", "go", "java", "ruby")
STREAM = "greetings"
# What earlier runs left where the package manager looks first, removed so that the quick start's
# own install step must put it there: Maven resolves the client from ~/.m2 before building anything.
LEFT_BEHIND = {"java": Path.home() / ".m2" / "repository" / "dev" / "s2sidecar"}


def _localize(text: str, live: Live, stream: str) -> str:
    return (
        text.replace("127.0.0.1:50051", live.address)
        .replace("localhost:8080", live.emulator_url.removeprefix("http://"))
        .replace(STREAM, stream)
    )


def _env(live: Live) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return {**env, "S2_SIDECAR": str(ROOT), "S2_SIDECAR_ADDRESS": live.address}


@pytest.mark.timeout(2400)
@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_quick_start_reads_a_record_as_written(language: str, live: Live, tmp_path: Path) -> None:
    readme = ROOT / "clients" / language / "README.md"
    steps = parse(readme.read_text())
    app = tmp_path / "app"
    app.mkdir()
    stream = f"{STREAM}-{language}-{os.getpid()}"
    if language in LEFT_BEHIND:
        shutil.rmtree(LEFT_BEHIND[language], ignore_errors=True)
    for step in steps:
        where = f"clients/{language}/README.md line {step.line}"
        if isinstance(step, File):
            path = app / step.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_localize(step.text, live, stream))
            continue
        assert isinstance(step, Step)
        script = _localize(step.script, live, stream)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", script, cwd=app, env=_env(live),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 1800)
        except TimeoutError:
            proc.kill()
            raise AssertionError(f"{where}: still running after 30 min\n{script}") from None
        output = out.decode(errors="replace")
        assert proc.returncode == 0, f"{where}: exit code {proc.returncode}\n$ {script}\n{output[-6000:]}"
        for expected in step.expect:
            assert expected in output, f"{where}: missing {expected!r}\n$ {script}\n{output[-6000:]}"


def test_the_readmes_first_read_is_the_python_quick_starts_app() -> None:
    """The top-level README shows the Python quick start's app: the same text, so it is tested too."""
    (app,) = [s for s in parse((ROOT / "clients" / "python" / "README.md").read_text()) if isinstance(s, File)]
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## A first read in each language") :]
    assert f"```python\n{app.text}```" in section
