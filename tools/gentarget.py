"""What tools/genproto.py and its per-language targets (genproto_java.py, genproto_ruby.py) share.
A module of its own: genproto.py runs as `__main__`, so a target importing `genproto` would load a
second copy, whose MissingTool the script's main() would not catch."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


class MissingTool(Exception):
    """A protoc or plugin a target needs is not installed; the message says how to install it."""


def protos(under: str = "") -> list[str]:
    """The .proto files under proto/`under`, relative to proto/ (as protoc takes them), sorted."""
    return sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / under).rglob("*.proto"))
