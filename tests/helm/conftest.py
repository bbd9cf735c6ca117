"""Session fixture: a real helm v4 binary (scripts/install-helm puts it in .tools/bin)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helm.helpers import HELM_BIN, REPO, Helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    """helm v4: $HELM_BIN if set, else .tools/bin/helm installed once by scripts/install-helm."""
    override = os.environ.get("HELM_BIN")
    if override:
        binary = Path(override)
    else:
        proc = subprocess.run(
            [str(REPO / "scripts" / "install-helm")], capture_output=True, text=True, timeout=600, check=False
        )
        assert proc.returncode == 0, f"scripts/install-helm failed:\n{proc.stdout}\n{proc.stderr}"
        binary = HELM_BIN
    assert binary.is_file() and os.access(binary, os.X_OK), f"no helm at {binary}"
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }
    version = subprocess.run(
        [str(binary), "version", "--short"], capture_output=True, text=True, env=env, check=True, timeout=60
    ).stdout.strip()
    assert version.startswith("v4."), f"helm v4 expected, got {version}"
    yield Helm(binary, env)
    shutil.rmtree(home, ignore_errors=True)
