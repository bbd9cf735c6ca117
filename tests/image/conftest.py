"""The image, built with podman from the Dockerfile once per session, and run as the chart runs it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.image.podman import Build, build_image, podman, require_tools

_built: list[Build] = []


@pytest.fixture(scope="session")
def image() -> Iterator[Build]:
    require_tools()
    build = build_image(f"localhost/s2-sidecar-test:{os.getpid()}")
    _built.append(build)
    yield build
    podman("rmi", "--force", build.image, check=False)  # the layers stay cached for the next build


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for b in _built:
        terminalreporter.write_line(
            f"image {b.image}: {b.size_bytes / 1e6:.0f} MB, built in {b.seconds:.0f} s "
            f"(stand-in base {b.base}: {b.base_seconds:.0f} s)"
        )
