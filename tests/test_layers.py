"""The layers point one way (README, "The data path"): `api → reads → upstream → wire`, read from
the source with `ast`. Every import counts, wherever it is written (module level, inside a
function, under `TYPE_CHECKING`), and importing `a.b.c` from outside package `a.b` also runs
`a/b/__init__.py`, so an edge goes to that package too: that is how Python executes it.

`KNOWN_TODAY` lists the import edges that break a rule today, each with why; the tests pass with
them and fail on any other, and on an entry that no longer breaks anything (remove it then).
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping
from pathlib import Path

import sidecar

SIDECAR = Path(sidecar.__file__).parent
Edge = tuple[str, str]  # (importer, imported module)

ASSEMBLY = ("sidecar.config", "sidecar.server", "sidecar.cli", "sidecar.testing", "sidecar.__main__")

# Rules: modules under the first prefix import nothing under the others.
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("sidecar.reads", ("sidecar._proto",), "protobuf bytes are `sidecar.wire`'s work"),
    ("sidecar.wire", ("sidecar.reads", "sidecar.upstream", "sidecar.api"), "wire is the bottom layer"),
    ("sidecar.reads", ("sidecar.api",), "the read logic knows nothing of gRPC"),
    ("sidecar.upstream", ("sidecar.reads", "sidecar.api"), "the upstream client is below the read logic"),
    *(
        (layer, ASSEMBLY, "config, server, cli and testing assemble the layers and hand them their settings")
        for layer in ("sidecar.api", "sidecar.reads", "sidecar.upstream", "sidecar.wire")
    ),
]

# Edges that break a rule, or close an import cycle, today: each with a one-line reason.
KNOWN_TODAY: dict[Edge, str] = {}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under `root` (a package by its `__init__` name), by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The modules of `known` that importing `name` (at `path`) imports, anywhere in it, with the
    packages those run on the way that `name` is not already inside."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            for alias in node.names:  # `from a import b`: b may be a module
                sub = f"{base}.{alias.name}"
                named.add(sub if sub in known else base)
    out = set()
    for target in named:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            module = ".".join(parts[:i])
            if module in known and module != name and not _under(name, module):
                out.add(module)
    return out


def import_graph(root: Path = SIDECAR, package: str = "sidecar") -> dict[str, set[str]]:
    known = modules(root, package)
    return {name: imports(name, path, known) for name, path in known.items()}


def rule_breaks(graph: Mapping[str, set[str]]) -> dict[Edge, str]:
    return {
        (importer, imported): why
        for importer, targets in graph.items()
        for imported in targets
        for layer, forbidden, why in RULES
        if _under(importer, layer) and any(_under(imported, f) for f in forbidden)
    }


def find_cycle(graph: Mapping[str, set[str]], skip: Collection[Edge] = ()) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None; generated
    protobuf code is left out."""
    nodes = sorted(n for n in graph if not _under(n, "sidecar._proto"))
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if (node, nxt) in skip or nxt not in graph or _under(nxt, "sidecar._proto"):
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in nodes:
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def _on_a_cycle(graph: Mapping[str, set[str]], edge: Edge) -> bool:
    """Whether `edge` closes a cycle: its target leads back to its source."""
    seen, todo = set(), [edge[1]]
    while todo:
        node = todo.pop()
        if node == edge[0]:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


def test_the_layers_point_one_way() -> None:
    graph = import_graph()
    broken = {edge: why for edge, why in rule_breaks(graph).items() if edge not in KNOWN_TODAY}
    assert not broken, "\n".join(f"{a} imports {b}: {why}" for (a, b), why in sorted(broken.items()))


def test_reads_holds_no_protobuf_code() -> None:
    """Never allowed, not even in KNOWN_TODAY: the history cache's bytes are read by `sidecar.wire`."""
    graph = import_graph()
    reads = {name: targets for name, targets in graph.items() if _under(name, "sidecar.reads")}
    assert "sidecar.reads.history" in reads
    assert not [(name, t) for name, targets in reads.items() for t in targets if _under(t, "sidecar._proto")]


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph(), set(KNOWN_TODAY))
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_every_known_exception_still_happens() -> None:
    """An entry of KNOWN_TODAY that no longer breaks a rule nor closes a cycle must go."""
    graph = import_graph()
    breaks = rule_breaks(graph)
    stale = [
        edge
        for edge in KNOWN_TODAY
        if edge[1] not in graph.get(edge[0], ()) or (edge not in breaks and not _on_a_cycle(graph, edge))
    ]
    assert not stale, f"fixed, remove from KNOWN_TODAY: {stale}"


def test_the_checks_see_function_level_imports_packages_and_cycles(tmp_path: Path) -> None:
    """The checks on a made-up package: they must find what a new violation would add."""
    root = tmp_path / "sidecar"
    files = {
        "__init__.py": "",
        "wire/__init__.py": "",
        "wire/bytes.py": "def f():\n    from sidecar.reads.cache import X\n",  # function level
        "reads/__init__.py": "from sidecar.reads.cache import X\n",
        "reads/cache.py": "from sidecar._proto.s2 import pb\nX = 1\n",
        "_proto/__init__.py": "",
        "_proto/s2.py": "",
        "upstream/__init__.py": "from .client import C\n",
        "upstream/client.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sidecar.config import K\n",
        "upstream/endpoint.py": "",
        "config.py": "from sidecar.upstream.endpoint import E\n",  # runs upstream/__init__.py
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    graph = import_graph(root, "sidecar")
    assert graph["sidecar.config"] == {"sidecar.upstream", "sidecar.upstream.endpoint"}
    assert graph["sidecar.upstream"] == {"sidecar.upstream.client"}  # its own package is not an edge
    assert set(rule_breaks(graph)) == {
        ("sidecar.wire.bytes", "sidecar.reads"),
        ("sidecar.wire.bytes", "sidecar.reads.cache"),
        ("sidecar.reads.cache", "sidecar._proto"),
        ("sidecar.reads.cache", "sidecar._proto.s2"),
        ("sidecar.upstream.client", "sidecar.config"),  # TYPE_CHECKING imports count
    }
    assert find_cycle(graph) == ["sidecar.config", "sidecar.upstream", "sidecar.upstream.client", "sidecar.config"]
    assert find_cycle(graph, {("sidecar.upstream.client", "sidecar.config")}) is None
    assert _on_a_cycle(graph, ("sidecar.upstream.client", "sidecar.config"))
    assert not _on_a_cycle(graph, ("sidecar.config", "sidecar.upstream.endpoint"))
