"""Fixtures for the injector tests: the chart's helm fixture, and the sidecar template rendered by it."""

from __future__ import annotations

import pytest

from tests.helm.conftest import helm  # noqa: F401  (the session helm v4 fixture, shared)
from tests.helm.helpers import Helm
from tests.injector.chart import Rendered, render


@pytest.fixture(scope="session")
def default_render(helm: Helm) -> Rendered:  # noqa: F811
    return render(helm)
