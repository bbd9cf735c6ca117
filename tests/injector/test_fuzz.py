"""Nothing the API server could send makes the patch logic raise, and every patch it returns
applies to the pod as sent (hypothesis: pod-shaped JSON with wrong types in every place)."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.injector import annotations as ann
from sidecar.injector.patch import Outcome, plan
from tests.injector.chart import Rendered

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
junk = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
# Lists and objects where a string belongs (e.g. mountPath as a list): they cannot be hashed.
unhashable = st.lists(scalars, max_size=2) | st.dictionaries(st.text(max_size=3), scalars, max_size=2)
names = st.sampled_from(["app", "s2-sidecar", "s2-sidecar-tmp", "s2-sidecar-socket", "web", "a/b~c"])
env = st.lists(
    st.fixed_dictionaries({"name": st.sampled_from(["S2_SIDECAR_ADDRESS", "X", "Y"]), "value": st.text(max_size=4)})
    | junk,
    max_size=3,
)
mounts = st.lists(
    st.fixed_dictionaries(
        {"name": names, "mountPath": st.sampled_from(["/data", "/var/run/s2-sidecar", "/tmp"]) | unhashable}
    )
    | junk,
    max_size=3,
)
container = st.fixed_dictionaries(
    {"name": names, "image": st.sampled_from(["s2-sidecar:0.1.0", "nginx:1", "example/app:2"])},
    optional={"env": env | junk, "volumeMounts": mounts | junk},
)
# Mostly well-formed pods that opt in (so most examples reach the patch), with junk mixed in at
# every level.
containers = st.lists(st.one_of(container, container, container, junk), min_size=1, max_size=3)
volumes = st.lists(st.fixed_dictionaries({"name": names, "emptyDir": st.just({})}) | junk, max_size=3) | junk
spec = st.fixed_dictionaries(
    {"containers": st.one_of(containers, containers, junk)},
    optional={"initContainers": containers | junk, "volumes": volumes},
)
opt_in = st.dictionaries(
    st.sampled_from(
        [ann.INJECT, ann.STATUS, ann.SOCKET, ann.BASIN_ENDPOINT, ann.TOKEN_SECRET, "s2-sidecar/cpu-limit", "other"]
    ),
    st.sampled_from(["true", "false", "injected", "unix", "tcp", "https://x.example", "s", "100m", ""]),
    max_size=4,
)
metadata = st.fixed_dictionaries(
    {"labels": st.one_of(st.just({ann.INJECT: "true"}), st.just({ann.INJECT: "true"}), opt_in, junk)},
    optional={"annotations": opt_in | junk},
)
pods = st.fixed_dictionaries(
    {"metadata": st.one_of(metadata, metadata, metadata, junk), "spec": st.one_of(spec, spec, spec, junk)}
)


class Planner:
    """plan() with the chart's default template (a short repr keeps hypothesis' reports readable)."""

    def __init__(self, rendered: Rendered) -> None:
        self.template = rendered.template

    def __repr__(self) -> str:
        return "Planner(chart defaults)"

    def __call__(self, pod: dict[str, Any]) -> Outcome:
        return plan(pod, self.template)


@pytest.fixture(scope="module")
def planner(default_render: Rendered) -> Planner:
    return Planner(default_render)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(pod=pods)
def test_plan_never_raises_and_its_patches_apply(planner: Planner, pod: dict[str, Any]) -> None:
    outcome = planner(pod)
    assert outcome.kind in ("injected", "skipped", "already_injected", "completed", "refused")
    if outcome.kind == "refused":
        assert outcome.warnings and outcome.reason and not outcome.patch
    if outcome.patch:
        jsonpatch.JsonPatch(outcome.patch).apply(pod, in_place=False)


opted_in_pods = st.fixed_dictionaries(
    {"metadata": st.just({"labels": {ann.INJECT: "true"}}), "spec": st.fixed_dictionaries({"containers": containers})}
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(pod=opted_in_pods)
def test_containers_of_any_shape_are_patched_or_refused_as_malformed(planner: Planner, pod: dict[str, Any]) -> None:
    """Every example reaches the containers (the test above mostly stops earlier): a field of the
    wrong type there is the pod's fault, a malformed_pod refusal, never an exception."""
    outcome = planner(pod)
    assert outcome.kind in ("injected", "already_injected") or outcome.reason in ("malformed_pod", "name_clash")
    if outcome.patch:
        jsonpatch.JsonPatch(outcome.patch).apply(pod, in_place=False)
