"""Reads the `## Quick start` section of a client's README into the steps it asks a newcomer to take
(sans-IO: the test in test_quickstart.py runs them).

The section's conventions, which the READMEs follow so that what they show is what is tested:

- a fenced block whose info string has `title="NAME"` (```` ```python title="app.py" ````) is a
  file the reader writes, at NAME in a new, empty folder outside the repository;
- a ```` ```sh ```` block is a step the reader runs in that folder, in order, with
  `S2_SIDECAR` set to the path of their clone of this repository; a line `# expect: TEXT` after a
  command says TEXT appears in what the block prints;
- a ```` ```text ```` block is output shown to the reader, not run;
- any other block is an error: the section shows nothing the test does not run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SECTION = "## Quick start"
_TITLE = re.compile(r'title="([^"/]+(?:/[^"/]+)*)"')


@dataclass(frozen=True)
class File:
    line: int
    name: str
    text: str


@dataclass(frozen=True)
class Step:
    line: int
    script: str
    expect: tuple[str, ...] = field(default=())


def section(markdown: str) -> tuple[int, str]:
    """The first line number and text of the `## Quick start` section (up to the next `## `)."""
    lines = markdown.splitlines()
    try:
        start = lines.index(SECTION)
    except ValueError:
        raise AssertionError(f"no {SECTION!r} heading") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return start + 1, "\n".join(lines[start:end])


def parse(markdown: str) -> list[File | Step]:
    first, text = section(markdown)
    steps: list[File | Step] = []
    info: str | None = None
    body: list[str] = []
    opened = 0
    for n, line in enumerate(text.splitlines(), first):
        if info is None:
            if line.startswith("```"):
                info, body, opened = line[3:].strip(), [], n
            continue
        if line.rstrip() != "```":
            body.append(line)
            continue
        content = "\n".join(body) + "\n"
        if m := _TITLE.search(info):
            steps.append(File(opened, m.group(1), content))
        elif info == "sh":
            expect = tuple(m.group(1) for b in body if (m := re.fullmatch(r"\s*# expect: (.+)", b)))
            steps.append(Step(opened, content, expect))
        elif info != "text":
            raise AssertionError(f'line {opened}: a ```{info} block in {SECTION}: give it title="FILE" or make it sh')
        info = None
    assert info is None, f"line {opened}: unclosed block"
    assert any(isinstance(s, Step) and s.expect for s in steps), f"{SECTION}: no step has an `# expect:` line"
    return steps
