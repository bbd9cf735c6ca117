"""The sync client is the async client's twin: the same methods with the same parameters and
defaults (the async one alone takes a `channel`), both built on the shared request and retry
code (`_base`, `_resume`), and the error type owns its retry table (no import cycle)."""

from __future__ import annotations

import ast
import inspect

import pytest
from s2sidecar_client import S2SidecarClient, S2SidecarSyncClient
from s2sidecar_client._base import ClientBase

from tests.clients.conftest import ROOT


@pytest.mark.parametrize("name", ["__init__", "read", "read_session", "check_tail", "wait_for_ready", "close"])
def test_both_clients_take_the_same_parameters(name: str) -> None:
    def params(cls: type) -> list[tuple[str, object, object]]:
        sig = inspect.signature(getattr(cls, name))
        return [(p.name, p.kind, p.default) for p in sig.parameters.values() if p.name != "channel"]

    assert params(S2SidecarClient) == params(S2SidecarSyncClient)


def test_both_clients_build_on_the_shared_base() -> None:
    assert issubclass(S2SidecarClient, ClientBase) and issubclass(S2SidecarSyncClient, ClientBase)


def _imports(module: str) -> set[str]:
    path = ROOT / "clients" / "python" / "src" / "s2sidecar_client" / f"{module}.py"
    tree = ast.parse(path.read_text())
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


def test_resume_code_uses_the_errors_and_not_the_other_way_round() -> None:
    assert "s2sidecar_client.errors" in _imports("_resume")
    assert not {m for m in _imports("errors") if m.startswith("s2sidecar_client.") and m != "s2sidecar_client.types"}
