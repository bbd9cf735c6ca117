"""The chart on a real cluster: values a misconfiguration would otherwise only show at runtime
(basin names, resources), pull secrets, scrape settings and the documented example manifests."""

from __future__ import annotations

import json
import re

import pytest

from sidecar.wire.names import basin_name_problem
from tests.helm.helpers import CHART, Helm


def _basin_pattern() -> re.Pattern[str]:
    schema = json.loads((CHART / "values.schema.json").read_text())
    return re.compile(schema["properties"]["s2"]["properties"]["defaultBasin"]["pattern"])


@pytest.mark.parametrize("command", ["lint", "template"])
def test_a_basin_name_s2_refuses_fails_the_chart_naming_the_value(helm: Helm, command: str) -> None:
    args = [command, *(["--strict"] if command == "lint" else ["rel"]), CHART, "--set", "s2.defaultBasin=My_Basin"]
    proc = helm.run(*args)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "defaultBasin" in out and "My_Basin" in out, out


@pytest.mark.parametrize(
    "name",
    [
        "",
        "my-basin",
        "a" * 8,
        "a" * 48,
        "0rders-01",
        "My_Basin",
        "short",
        "a" * 49,
        "-leading",
        "trailing-",
        "a_b_c_d_e",
    ],
)
def test_the_schema_basin_pattern_is_the_sidecars_rule(name: str) -> None:
    # The sidecar exits at start on a name basin_name_problem refuses; the schema must refuse the same.
    accepted = bool(_basin_pattern().search(name))
    assert accepted == (name == "" or basin_name_problem(name) is None), name
