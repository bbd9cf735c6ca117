"""Every relative link in the repository's Markdown resolves: the file or folder it names exists,
and its `#anchor`, if any, is a heading of that file (as GitHub makes anchors from headings). And
where a doc or comment sends a reader to a section of the README by name (`README, "Name"` or
`README's "Name"`), the README has a heading that starts with that name. Links inside code blocks and
inline code are not links; links to URLs are not checked (no network here)."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")
README_SECTION = re.compile(r"(?<!chart )README(?:'s|,)\s+\"([^\"]+)\"")


def tracked(pattern: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z", pattern], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p]


def prose(markdown: str) -> list[tuple[int, str]]:
    """The lines outside fenced blocks, numbered from 1, with inline code blanked."""
    out, fenced = [], False
    for n, line in enumerate(markdown.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append((n, re.sub(r"`[^`]*`", "``", line)))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in markdown.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced and (m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    problems = []
    for n, line in prose(path.read_text()):
        for m in LINK.finditer(line):
            target = m.group(1)
            if re.match(r"[a-zA-Z][a-zA-Z+.-]*:", target):
                continue  # a URL (https:, mailto:)
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}:{n}: {target}"
            if not dest.exists():
                problems.append(f"{where}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
                problems.append(f"{where}: no heading makes #{anchor} in {dest.relative_to(ROOT)}")
    return problems


def test_every_relative_link_resolves() -> None:
    files = tracked("*.md")
    assert len(files) >= 15, files  # the listing found the repository's docs
    problems = [p for f in files for p in broken_links(f)]
    assert not problems, "\n".join(problems)


def test_every_named_readme_section_exists() -> None:
    headings = [line[3:] for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("## ")]
    problems = []
    for path in tracked("*"):
        if path == Path(__file__) or path.suffix in {".binpb", ".png", ".jar"} or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for m in README_SECTION.finditer(line):
                if not any(h.startswith(m.group(1)) for h in headings):
                    problems.append(f"{path.relative_to(ROOT)}:{n}: README has no section {m.group(1)!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("[a](nope.md)", ["x.md:1: nope.md: no such file"]),
        ("[a](x.md#missing)", ["x.md:1: x.md#missing: no heading makes #missing in x.md"]),
        ("# Hello, `World`!\n[a](#hello-world)", []),
        ("```\n[a](nope.md)\n```\n`[a](nope.md)` [b](https://x.y/nope)", []),
        ("## Dup\n## Dup\n[a](#dup-1)", []),
    ],
)
def test_the_checker_finds_what_is_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, markdown: str, expected: list[str]
) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "x.md").write_text(markdown + "\n")
    assert broken_links(tmp_path / "x.md") == expected
