"""The sidecar spec the injector adds, as the Helm chart rendered it.

The chart renders its own named templates ("s2-sidecar.containerSpec", "s2-sidecar.volumes",
"s2-sidecar.appEnv", "s2-sidecar.appVolumeMounts") into a ConfigMap (`template.json`) that the
injector mounts: the injector never builds a container itself, so it cannot drift from what a
chart author including those templates gets. Both socket variants are rendered, because the
socket mode is a per-pod annotation and changes the listen address, mounts and volumes together.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
VERSION = 1


class TemplateError(ValueError):
    """The template file is not what the chart renders (wrong chart version, hand-edited)."""


@dataclass(frozen=True)
class Variant:
    container: JSON
    volumes: list[JSON]
    app_env: list[JSON]
    app_volume_mounts: list[JSON]

    def copy(self) -> Variant:
        """A deep copy: patches are built by editing it, and the template serves every request."""
        return copy.deepcopy(self)


@dataclass(frozen=True)
class SidecarTemplate:
    name: str
    native: bool
    unix_default: bool
    token_key: str
    token_optional: bool
    tcp: Variant
    unix: Variant
    # Merged into the pod's spec.imagePullSecrets (the chart's `imagePullSecrets`).
    image_pull_secrets: tuple[str, ...] = ()
    # prometheus.io/* annotations on injected pods (the chart's metrics.podAnnotations).
    scrape_annotations: bool = False

    def variant(self, unix: bool) -> Variant:
        return (self.unix if unix else self.tcp).copy()


def _list_of_objects(value: Any, where: str) -> list[JSON]:
    # helm renders an empty named template as null, not []
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise TemplateError(f"{where} must be a list of objects")
    return value


def _variant(raw: Any, where: str, name: str) -> Variant:
    if not isinstance(raw, dict):
        raise TemplateError(f"{where} must be an object")
    container = raw.get("container")
    if not isinstance(container, dict) or container.get("name") != name:
        raise TemplateError(f"{where}.container must be an object named {name!r}")
    return Variant(
        container=container,
        volumes=_list_of_objects(raw.get("volumes"), f"{where}.volumes"),
        app_env=_list_of_objects(raw.get("appEnv"), f"{where}.appEnv"),
        app_volume_mounts=_list_of_objects(raw.get("appVolumeMounts"), f"{where}.appVolumeMounts"),
    )


def load_template(text: str) -> SidecarTemplate:
    """Parse `template.json`; raises TemplateError naming what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise TemplateError(f"not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise TemplateError("must be a JSON object")
    if raw.get("version") != VERSION:
        raise TemplateError(f"version {raw.get('version')!r} is not {VERSION} (render it with the matching chart)")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise TemplateError("name must be a non-empty string")
    token = raw.get("tokenSecret")
    if not isinstance(token, dict) or not isinstance(token.get("key"), str):
        raise TemplateError("tokenSecret.key must be a string")
    pull_secrets = _list_of_objects(raw.get("imagePullSecrets"), "imagePullSecrets")
    if not all(isinstance(s.get("name"), str) and s["name"] for s in pull_secrets):
        raise TemplateError("imagePullSecrets must be objects with a name")
    variants = raw.get("variants")
    if not isinstance(variants, dict):
        raise TemplateError("variants must be an object")
    return SidecarTemplate(
        name=name,
        native=bool(raw.get("native", True)),
        unix_default=bool(raw.get("unixSocketDefault", False)),
        token_key=token["key"],
        token_optional=bool(token.get("optional", False)),
        tcp=_variant(variants.get("tcp"), "variants.tcp", name),
        unix=_variant(variants.get("unix"), "variants.unix", name),
        image_pull_secrets=tuple(s["name"] for s in pull_secrets),
        scrape_annotations=raw.get("scrapeAnnotations") is True,
    )
