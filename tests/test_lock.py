"""The Python dependency locks in requirements/ (for reproducible installs) agree with
pyproject.toml: every requirement of the project, its extras, its build backend and the Python
client is pinned there at a version its range accepts, with sha256 hashes, and the narrower locks
are slices of the widest one. No network: this reads files only. When it fails, run `scripts/lock`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "requirements"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CLIENT = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())["project"]
BUILD_REQUIRES = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
SELF = "s2-sidecar (pyproject.toml)"
FIX = "run scripts/lock"


@dataclass
class Pin:
    version: str
    hashes: list[str]
    via: list[str] = field(default_factory=list)  # uv's annotations: who asked for it


def parse_lock(path: Path) -> dict[str, Pin]:
    """`name==version [; marker] \\ --hash=sha256:... # via ...` blocks, as `uv pip compile` writes them."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("# This file") or line == "#    scripts/lock":
            continue
        if m := re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(;[^\\]*)?\\?", line):
            current = pins[canonicalize_name(m[1])] = Pin(m[2], [])
        elif current is None:
            raise AssertionError(f"{path.name}: a line before any pin: {raw!r}")
        elif m := re.fullmatch(r"--hash=sha256:([0-9a-f]{64})\s*\\?", line):
            current.hashes.append(m[1])
        elif m := re.fullmatch(r"#\s*(?:via\b)?\s*(.*)", line):
            if m[1]:
                current.via.append(m[1])
        else:
            raise AssertionError(f"{path.name}: not a pin, hash or annotation: {raw!r}")
    return pins


def lock(name: str) -> dict[str, Pin]:
    path = LOCKS / name
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing: {FIX}"
    return parse_lock(path)


def requirements(*extras: str) -> list[Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    return reqs


# Each lock and what it must hold (scripts/lock writes them; scripts/bootstrap installs them).
CASES = {
    "test.txt": requirements("test", "tools"),
    "run.txt": requirements("tools"),
    "runtime.txt": requirements(),
    "build.txt": [Requirement("pip"), *(Requirement(r) for r in BUILD_REQUIRES)],
}


def assert_pinned(reqs: list[Requirement], pins: dict[str, Pin], where: str) -> None:
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} ({where}) is not in the lock: {FIX}"
        version = pins[name].version
        assert req.specifier.contains(Version(version), prereleases=True), (
            f"the lock pins {name}=={version}, outside {req} ({where}): {FIX}"
        )


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_requirement_is_pinned_in_range_with_hashes(name: str) -> None:
    pins = lock(name)
    assert_pinned(CASES[name], pins, "pyproject.toml")
    for pkg, pin in pins.items():
        assert pin.hashes, f"{name}: {pkg}=={pin.version} has no --hash: {FIX}"


@pytest.mark.parametrize("name", sorted(set(CASES) - {"build.txt"}))
def test_nothing_is_locked_for_a_requirement_pyproject_no_longer_names(name: str) -> None:
    """A dependency dropped from pyproject.toml leaves the lock with it (uv names who asked)."""
    pins = lock(name)
    direct = {canonicalize_name(r.name) for r in CASES[name]}
    for pkg, pin in pins.items():
        assert pin.via, f"{name}: {pkg} says nothing of why it is locked: {FIX}"
        if SELF in pin.via:
            assert pkg in direct, f"{name}: {pkg} is locked for pyproject.toml, which no longer names it: {FIX}"
        parents = [v for v in pin.via if v not in (SELF, "-c requirements/test.txt")]
        assert pkg in direct or parents, f"{name}: nothing needs {pkg}: {FIX}"
        for parent in parents:
            assert canonicalize_name(parent) in pins, f"{name}: {pkg} is there for {parent}, which is not: {FIX}"


def test_the_narrower_locks_are_slices_of_the_test_lock() -> None:
    """One version (and file) of each package whether the sidecar runs, is tested or is built."""
    test = lock("test.txt")
    for name in ("run.txt", "runtime.txt", "build.txt"):
        for pkg, pin in lock(name).items():
            if pkg not in test:
                assert name == "build.txt" and pkg == "pip", f"{name}: {pkg} is not in test.txt: {FIX}"
                continue
            assert (pin.version, sorted(pin.hashes)) == (test[pkg].version, sorted(test[pkg].hashes)), (
                f"{name} locks {pkg}=={pin.version}, test.txt {test[pkg].version}: {FIX}"
            )
    assert set(lock("runtime.txt")) < set(lock("run.txt")) < set(test)


def test_the_python_client_lints_and_runs_with_the_test_lock() -> None:
    """scripts/test lints the client, and tests/clients run it, in the project's venv."""
    reqs = [Requirement(r) for r in CLIENT["dependencies"] + CLIENT["optional-dependencies"]["dev"]]
    assert_pinned(reqs, lock("test.txt"), "clients/python/pyproject.toml")


def test_the_stub_generator_is_the_pinned_one() -> None:
    """tools/genproto.py --check compares with stubs made by exactly this grpcio-tools."""
    (pinned,) = [Requirement(r) for r in PROJECT["optional-dependencies"]["test"] if r.startswith("grpcio-tools")]
    assert str(pinned.specifier).startswith("=="), pinned
    assert lock("test.txt")["grpcio-tools"].version == str(pinned.specifier)[2:]


def test_uv_is_locked_at_the_version_uv_in_names() -> None:
    (wanted,) = [Requirement(line) for line in (LOCKS / "uv.in").read_text().splitlines() if line.strip()]
    pins = lock("uv.txt")
    assert set(pins) == {"uv"} and pins["uv"].hashes
    assert wanted.specifier.contains(pins["uv"].version), f"uv.txt has uv=={pins['uv'].version}, uv.in {wanted}: {FIX}"


def test_the_s2_sdk_lock_pins_the_sdk_its_test_installs() -> None:
    """tests/emulator/test_s2_sdk.py's own venv: the SDK it names, and everything under it hashed."""
    from tests.emulator.test_s2_sdk import SDK_REQUIREMENT

    wanted = Requirement(SDK_REQUIREMENT)
    pins = lock("s2-sdk.txt")
    assert wanted.specifier.contains(pins["s2-sdk"].version), (
        f"s2-sdk.txt has {pins['s2-sdk'].version}, the test {wanted}: {FIX}"
    )
    (named,) = [Requirement(x) for x in (LOCKS / "s2-sdk.in").read_text().splitlines() if x and not x.startswith("#")]
    assert named == wanted, f"requirements/s2-sdk.in names {named}, tests/emulator/test_s2_sdk.py {wanted}"
    assert all(pin.hashes for pin in pins.values())
