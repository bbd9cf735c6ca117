"""The chart as the injector tests see it: helm renders the injector's template.json (the only
source of the injected container) and, for comparison, the example Deployment built by the named
templates from the same values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.injector.template import SidecarTemplate, load_template
from tests.helm.helpers import Helm, is_injector, pod_spec


@dataclass(frozen=True)
class Rendered:
    docs: list[dict[str, Any]]
    template_text: str

    @property
    def template(self) -> SidecarTemplate:
        return load_template(self.template_text)

    def example_spec(self) -> dict[str, Any]:
        """The example Deployment's pod spec (render with example.enabled=true)."""
        return pod_spec(self.docs)


def render(helm: Helm, *values: Path, sets: tuple[str, ...] = ()) -> Rendered:
    docs = helm.template(*values, sets=sets)
    maps = [d for d in docs if d["kind"] == "ConfigMap" and is_injector(d)]
    assert len(maps) == 1, [d["kind"] for d in docs]
    return Rendered(docs, maps[0]["data"]["template.json"])
