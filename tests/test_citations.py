"""What a comment cites, a reader of the repository can open: no tracked text file points at notes
kept outside the repository (PERFORMANCE.md, SEMANTICS.md, FIELD-NOTES, s2s.md, ../shared/...) or
at an issue number ("issue 20", "issue #5"). State the fact itself, or cite a file in the
repository, S2's public docs (https://s2.dev/docs/...) or a public repository: a URL such as
https://github.com/grpc/grpc-java/issues/10918, or "s2-streamstore/s2 issue 123", is fine.

`PENDING` lists the files, owned by other work under way, that still hold such citations today,
with how many lines each: the test passes with them and fails on any other, on more lines than
allowed, and on an entry whose file no longer holds any (remove it then, so the list shrinks).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SELF = "tests/test_citations.py"  # names the patterns in its own examples

# What gives a citation away, each with what it points at.
PATTERNS: dict[str, re.Pattern[str]] = {
    "notes outside the repository": re.compile(
        r"\b(?:PERFORMANCE|SEMANTICS)\.md|\bFIELD-NOTES\b|\bs2s\.md\b", re.IGNORECASE
    ),
    "the shared folder outside the repository": re.compile(
        r"\.\./shared/|/work/shared\b|(?<![\w/.-])shared/s2-reference", re.IGNORECASE
    ),
    "an issue number": re.compile(r"\bissues?\s*#?\s*\d+", re.IGNORECASE),
}
# An issue of a named public repository ("s2-streamstore/s2 issue 123", "owner/name's GitHub issue 5").
PUBLIC_ISSUE = re.compile(r"[\w.-]+/[\w.-]+(?:'s)?\s+(?:GitHub\s+)?issues?\s*#?\s*\d+", re.IGNORECASE)

# Generated or lock files: written by tools, not by us.
GENERATED = (
    "sidecar/_proto/",
    "clients/python/src/s2sidecar_client/_proto/",
    "clients/java/src/generated/",
    "clients/node/package-lock.json",
    "requirements/",
)

# Files other work owns that still cite today: lines allowed in each.
PENDING: dict[str, int] = {}


def citing_lines(text: str) -> list[tuple[int, str]]:
    """The lines of `text` (numbered from 1) that cite something a reader cannot open."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        public = [m.span() for m in PUBLIC_ISSUE.finditer(line)]
        for kind, pattern in PATTERNS.items():
            hits = [
                m
                for m in pattern.finditer(line)
                if kind != "an issue number" or not any(a <= m.start() and m.end() <= b for a, b in public)
            ]
            if hits:
                found.append((number, line.strip()))
                break
    return found


def tracked_text_files(root: Path) -> dict[str, str]:
    """Every file git tracks under `root` that is text, by its path, but the generated ones."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    files = {}
    for name in listed.decode().split("\0"):
        path = root / name
        if not name or name == SELF or name.startswith(GENERATED) or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            files[name] = data.decode()
        except UnicodeDecodeError:
            continue
    return files


def citations(files: Mapping[str, str]) -> dict[str, list[tuple[int, str]]]:
    return {name: lines for name, text in sorted(files.items()) if (lines := citing_lines(text))}


def problems(found: Mapping[str, list[tuple[int, str]]], pending: Mapping[str, int]) -> list[str]:
    """file:line for each citation beyond what `pending` allows, and each stale `pending` entry."""
    out = []
    for name, lines in found.items():
        allowed = pending.get(name, 0)
        if len(lines) > allowed:
            why = f" ({len(lines)} lines, PENDING allows {allowed})" if allowed else ""
            out += [f"{name}:{number}: {line}{why}" for number, line in lines]
    out += [f"{name}: in PENDING but cites nothing now: remove the entry" for name in pending if name not in found]
    return out


def test_no_tracked_file_cites_what_the_repository_does_not_hold() -> None:
    files = tracked_text_files(ROOT)
    assert "README.md" in files and "sidecar/cli.py" in files  # the listing found the repository
    bad = problems(citations(files), PENDING)
    if bad:
        pytest.fail("state the fact, or cite a file in the repository or a public URL:\n" + "\n".join(bad))


def test_the_check_finds_each_kind_and_lets_public_citations_pass() -> None:
    cited = {
        "a.py": "x = 1  # see PERFORMANCE.md\n",
        "b.md": "as in `shared/s2-reference/openapi.json`\n",
        "c.py": '"""Issue 16, item 4: waits."""\n',
        "d.sh": "# per ../shared/notes\n",
        "e.py": "# (issue #5)\n",
        "f.py": "# See FIELD-NOTES for this machine\n",
        "g.py": "# s2s.md: messages below 1 KiB stay uncompressed\n",
    }
    fine = {
        "h.java": '@ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")\n',
        "i.md": "S2 answers so (s2-streamstore/s2 issue 123; https://s2.dev/docs/api).\n",
        "j.py": "# Issue the serving certificate with cert-manager; no issues here.\n",
        "k.py": "# the README's performance section; tests/bench/bench.py\n",
    }
    found = citations({**cited, **fine})
    assert sorted(found) == sorted(cited)
    assert problems(found, {}) == [f"{name}:1: {text.strip()}" for name, text in sorted(cited.items())]
    assert problems(found, {"a.py": 1, "h.java": 1}) == [
        f"{name}:1: {text.strip()}" for name, text in sorted(cited.items()) if name != "a.py"
    ] + ["h.java: in PENDING but cites nothing now: remove the entry"]
    assert problems({"a.py": [(1, "one"), (2, "two")]}, {"a.py": 1}) == [
        "a.py:1: one (2 lines, PENDING allows 1)",
        "a.py:2: two (2 lines, PENDING allows 1)",
    ]
