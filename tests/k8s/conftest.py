"""Session fixtures: one control plane (etcd + kube-apiserver, ~25 s to start) and one helm release
with its injector, shared by every test here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helm.conftest import helm  # noqa: F401  (the session helm v4 fixture, shared)
from tests.helm.helpers import Helm
from tests.k8s import cluster as control_plane
from tests.k8s.release import EXCLUDED, NAMESPACE, InjectorProcess, Release
from tests.k8s.workloads import APP_NAMESPACE, wait_for_webhook


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[control_plane.Cluster]:
    c = control_plane.start(tmp_path_factory.mktemp("k8s"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def release(
    cluster: control_plane.Cluster,
    helm: Helm,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    injector = InjectorProcess(control_plane.free_port(), tmp_path_factory.mktemp("injector"))
    rel = Release(cluster, helm, injector)
    rel.install()
    # Pods are created in these as tests need them; kube-system exists already.
    for ns in (NAMESPACE, "kube-system", EXCLUDED):
        cluster.namespace(ns)
    cluster.namespace(APP_NAMESPACE, "orders-api")
    injector.load(cluster)
    injector.start()
    wait_for_webhook(rel, injected=True)
    try:
        yield rel
    finally:
        injector.stop()
