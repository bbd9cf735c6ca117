"""The README's "Try it with grpcurl and curl" block, run as printed (after `scripts/run`
its grpcurl commands must work): in bash from the repository root, with a PATH that
does not have .venv/bin (the block's own `export` line must be what finds grpcurl), against a real
sidecar process whose addresses replace the documented 127.0.0.1:50051 and localhost:8080."""

from __future__ import annotations

import asyncio
import re

from sidecar.testing import SidecarProcess
from tests.clients.conftest import ROOT

SECTION = "## Try it with grpcurl and curl"


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "no sh block in the README's grpcurl section"
    return match.group(1)


def commands(block: str) -> list[str]:
    """The block's commands: comments dropped, `\\` continuations joined."""
    out: list[str] = []
    pending = ""
    for line in block.splitlines():
        line = re.sub(r"\s+#.*$", "", line) if not line.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        out.append(pending.strip())
        pending = ""
    return out


async def test_the_readme_grpcurl_block_works_as_printed() -> None:
    cmds = commands(readme_block())
    assert cmds[0] == 'export PATH="$PWD/.venv/bin:$PATH"'
    assert sum("grpcurl" in c for c in cmds) >= 5
    async with SidecarProcess() as sc:
        lines = []
        for i, cmd in enumerate(cmds):
            cmd = (
                cmd.replace("127.0.0.1:50051", sc.address)
                .replace("localhost:8080", sc.emulator_url.removeprefix("http://"))
                .replace("-max-time 30", "-max-time 2")  # the session: follow for 2 s, not 30
            )
            lines += [f"echo '__cmd {i}'", cmd, f"printf '\\n__exit {i} %d\\n' $?"]
        proc = await asyncio.create_subprocess_exec(
            "bash", "-o", "pipefail", "-c", "\n".join(lines),
            cwd=ROOT, env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    exits = dict(re.findall(r"^__exit (\d+) (\d+)$", text, re.M))
    assert len(exits) == len(cmds), text
    for i, cmd in enumerate(cmds):
        # grpcurl ends a session cut by -max-time with DeadlineExceeded: that one may exit non-zero
        if "-max-time" not in cmd:
            assert exits[str(i)] == "0", f"{cmd!r} failed:\n{text}"
    assert "command not found" not in text
    assert "s2sidecar.v1.StreamService" in text  # list
    assert "tail_offset" in text  # describe
    assert '"seqNum": "1"' in text  # CheckTail after the curl append
    assert '"body": "aGVsbG8="' in text  # Read: hello
    assert '"status": "SERVING"' in text  # health
