"""A small reader of the Prometheus text exposition format 0.0.4, independent of the code that
writes it: one sample's value, and the check behind the metric-family contract tests (the
families a scrape shows, with their names, types, HELP and label names, against a table)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# (name, type, label names): what dashboards and alerts depend on.
FamilyTable = dict[str, tuple[str, tuple[str, ...]]]

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass
class Family:
    type: str = ""
    help: str | None = None
    # label names of each sample, with the sample's suffix ("" or _bucket/_sum/_count)
    samples: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)


def _labels(raw: str) -> dict[str, str]:
    """Label names and values (as written: escapes left in) of a sample's `{...}`."""
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(raw):
        m = _LABEL.match(raw, pos)
        assert m, f"bad labels {raw!r}"
        labels[m.group(1)] = m.group(2)
        pos = m.end()
    return labels


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample `name` with exactly these labels, in whatever order they are written."""
    for line in text.splitlines():
        m = _SAMPLE.fullmatch(line)
        if m and m.group(1) == name and _labels(m.group(2) or "") == labels:
            return float(m.group(3))
    raise AssertionError(f"no sample {name}{labels}")


def parse(text: str) -> dict[str, Family]:
    """Families by name, in the order they appear; fails on a sample of no declared family."""
    families: dict[str, Family] = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            name, _, help = line[len("# HELP ") :].partition(" ")
            families.setdefault(name, Family()).help = help
        elif line.startswith("# TYPE "):
            name, _, type = line[len("# TYPE ") :].partition(" ")
            assert families.setdefault(name, Family()).type == "", f"{name} typed twice"
            families[name].type = type
        elif line.startswith("#"):
            continue
        else:
            m = _SAMPLE.fullmatch(line)
            assert m, f"not a sample line: {line!r}"
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            float(value)  # a number, "+Inf" or "NaN"
            family, suffix = families.get(name), ""
            if family is None:
                for suffix in _HISTOGRAM_SUFFIXES:
                    if name.endswith(suffix) and name[: -len(suffix)] in families:
                        family = families[name[: -len(suffix)]]
                        break
            assert family is not None and family.type, f"sample of no declared family: {line!r}"
            assert suffix == "" or family.type == "histogram", line
            family.samples.append((suffix, tuple(_labels(labels))))
    return families


def check(text: str, expected: FamilyTable) -> None:
    """Every family of `expected` and no other; each with its type, a HELP text, and every sample
    with exactly the label names listed, and `le` on histogram buckets (as a set: the text format's
    label order means nothing to Prometheus, and writers differ in it). A family with labels must
    show at least one sample, so its label names are really checked: the caller makes the traffic."""
    families = parse(text)
    assert set(families) == set(expected), (
        f"families differ: missing {sorted(set(expected) - set(families))}, "
        f"unexpected {sorted(set(families) - set(expected))}"
    )
    for name, (type, labels) in expected.items():
        family = families[name]
        assert family.type == type, f"{name}: type {family.type}, expected {type}"
        assert family.help, f"{name}: no HELP text"
        if labels:
            assert family.samples, f"{name}: no sample, so its labels ({labels}) went unchecked"
        for suffix, names in family.samples:
            want = (*labels, "le") if suffix == "_bucket" else labels
            assert sorted(names) == sorted(want), f"{name}{suffix}: labels {names}, expected {want}"
        if type == "histogram" and family.samples:
            assert {s for s, _ in family.samples} == set(_HISTOGRAM_SUFFIXES), f"{name}: {family.samples}"
