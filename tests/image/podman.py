"""Thin helpers around the `podman` CLI for the image tests: the stand-in base, the build, a run.

Where no image registry is reachable (this project's CI), the Dockerfile's BASE_IMAGE is a stand-in
made from Debian's packages with mmdebstrap: Debian's python3.11 with venv and CA certificates, plus
a `python` on PATH as the official image has it. The base's tarball is cached by its inputs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".tools" / "image-cache"
INSTALL = "scripts/install-container-tools"
TOOLS = ("podman", "runc", "mmdebstrap")

# On the project's CI machines (tried there): crun refuses their hybrid cgroup layout, and podman's
# default ulimits are refused; the same flags are harmless elsewhere.
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
ULIMITS = ["--ulimit", "nofile=1024:4096", "--ulimit", "nproc=1024:4096"]

SUITE = "bookworm"  # the official image's Debian
STANDIN_ARGS = [
    "--variant=apt",
    "--include=python3.11,python3.11-venv,ca-certificates",
    # docs, man pages and translations: nothing the sidecar reads (licences stay)
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    # the official image's `python` on PATH (the Dockerfile runs `python -m venv`)
    '--customize-hook=ln -s /usr/bin/python3.11 "$1/usr/local/bin/python"',
]
STANDIN_CHANGES = [
    "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD=["python3"]',
]


def require_tools() -> None:
    """Fail (never skip) with one line that says what to run when a tool is missing."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"image tests need {', '.join(missing)} on PATH: run {INSTALL}", pytrace=False)


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


def standin_base() -> str:
    """The stand-in base image's name: imported from the cached tarball, built when missing."""
    key = hashlib.sha256(json.dumps([SUITE, STANDIN_ARGS, STANDIN_CHANGES]).encode()).hexdigest()[:16]
    name = f"localhost/s2-sidecar-standin-python:{key}"
    if podman("image", "exists", name, check=False).returncode == 0:
        return name
    tarball = CACHE / f"standin-{key}.tar"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(f".{os.getpid()}.partial")  # two sessions at once: no clash
        proc = subprocess.run(
            ["mmdebstrap", "--quiet", "--format=tar", *STANDIN_ARGS, SUITE, str(partial)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"mmdebstrap exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        partial.rename(tarball)  # only a complete tarball is ever cached
    podman("import", *(a for c in STANDIN_CHANGES for a in ("--change", c)), str(tarball), name, timeout=300)
    return name


@dataclass
class Build:
    image: str
    base: str
    seconds: float  # the image build alone, the base not counted
    base_seconds: float
    size_bytes: int


def build_image(tag: str) -> Build:
    started = time.monotonic()
    base = standin_base()
    base_done = time.monotonic()
    podman(
        "build", *ULIMITS,
        # pip in the build trusts what this machine trusts (e.g. a TLS-inspecting proxy's CA)
        "--volume", "/etc/ssl/certs:/etc/ssl/certs:ro",
        "--build-arg", f"BASE_IMAGE={base}",
        "--tag", tag, "--file", str(REPO / "Dockerfile"), str(REPO),
        timeout=900,
    )  # fmt: skip
    done = time.monotonic()
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    return Build(tag, base, done - base_done, base_done - started, size)
