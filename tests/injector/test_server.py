"""The injector as a real process: `python -m sidecar injector` over HTTPS (certificates from
trustme), answering AdmissionReviews the way the API server sends them."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import trustme

from sidecar.injector import annotations as ann
from sidecar.injector import bounds
from tests.helm.helpers import REPO, env_values, validate_k8s
from tests.injector import pods
from tests.injector.chart import Rendered

STARTUP = 30.0  # bound on waiting for the process; not an assertion on speed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Injector:
    proc: subprocess.Popen[bytes]
    port: int
    ca: trustme.CA
    cert: Path
    key: Path

    def context(self, ca: trustme.CA | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        (ca or self.ca).configure_trust(ctx)
        return ctx

    def call(
        self, method: str, path: str, body: bytes | None = None, ca: trustme.CA | None = None
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(f"https://localhost:{self.port}{path}", data=body, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.context(ca), timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def review(self, pod: dict[str, Any], **request: Any) -> dict[str, Any]:
        uid = str(uuid.uuid4())
        body = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": pod["metadata"].get("namespace", "default"),
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod,
                "oldObject": None,
                "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
                **request,
            },
        }
        status, raw = self.call("POST", "/mutate", json.dumps(body).encode())
        assert status == 200, raw
        answer: dict[str, Any] = json.loads(raw)
        assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == uid and answer["response"]["allowed"] is True
        return dict(answer["response"])

    def metric(self, sample: str, ca: trustme.CA | None = None) -> float:
        status, raw = self.call("GET", "/metrics", ca=ca)
        assert status == 200
        for line in raw.decode().splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[-1])
        return 0.0


def _write_cert(ca: trustme.CA, cert: Path, key: Path) -> None:
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    # written next to the target and renamed, like a Secret volume update: never half a file
    for path, blob in ((key, leaf.private_key_pem.bytes()), (cert, leaf.cert_chain_pems[0].bytes())):
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)


def _renew_cert(injector: Injector) -> trustme.CA:
    """A certificate from a new CA written over the injector's, once a handshake presents it."""
    ca = trustme.CA()
    _write_cert(ca, injector.cert, injector.key)
    deadline = time.monotonic() + STARTUP
    while True:  # until a new handshake presents the new certificate
        try:
            if injector.call("GET", "/healthz", ca=ca)[0] == 200:
                return ca
        except (ssl.SSLError, urllib.error.URLError):
            pass
        assert time.monotonic() < deadline, "certificate never reloaded"
        time.sleep(0.1)


def _start(tmp: Path, template_text: str, *extra: str) -> Injector:
    ca = trustme.CA()
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    _write_cert(ca, cert, key)
    template = tmp / "template.json"
    template.write_text(template_text)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "injector", "--listen", f"127.0.0.1:{port}",
         "--tls-cert", str(cert), "--tls-key", str(key), "--template", str(template),
         "--drain-seconds", "0", "--log-format", "text", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    injector = Injector(proc, port, ca, cert, key)
    deadline = time.monotonic() + STARTUP
    while True:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            if injector.call("GET", "/readyz")[0] == 200:
                return injector
        except OSError:
            pass
        assert time.monotonic() < deadline, "injector did not become ready"
        time.sleep(0.1)


def _stop(injector: Injector) -> str:
    if injector.proc.poll() is None:
        injector.proc.send_signal(signal.SIGTERM)
    out, _ = injector.proc.communicate(timeout=30)
    return out.decode()


@pytest.fixture(scope="module")
def injector(tmp_path_factory: pytest.TempPathFactory, default_render: Rendered) -> Iterator[Injector]:
    inj = _start(tmp_path_factory.mktemp("injector"), default_render.template_text)
    yield inj
    output = _stop(inj)
    assert inj.proc.returncode == 0, output


def _patched(pod: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.JsonPatch(ops).apply(pod, in_place=False)
    return result


# --------------------------------------------------------------------------------------- answers


@pytest.mark.parametrize("name", list(pods.ALL))
def test_injects_patches_that_apply_and_validate(injector: Injector, name: str) -> None:
    pod = pods.ALL[name]()
    response = injector.review(pod)
    assert "warnings" not in response
    patched = _patched(pod, response)
    validate_k8s(patched)
    assert patched["spec"]["initContainers"][0]["name"] == "s2-sidecar"
    assert all(env_values(c)["S2_SIDECAR_ADDRESS"] == "127.0.0.1:50051" for c in patched["spec"]["containers"])
    # the patched pod sent again (a re-created pod with its spec): no change
    again = injector.review(patched)
    assert "patch" not in again and "warnings" not in again


def test_unix_socket_annotation_over_https(injector: Injector) -> None:
    pod = pods.with_annotations(pods.web_app(), {ann.SOCKET: "unix", ann.DEFAULT_BASIN: "orders-eu-1"})
    patched = _patched(pod, injector.review(pod))
    validate_k8s(patched)
    sidecar = patched["spec"]["initContainers"][0]
    assert env_values(sidecar)["S2_SIDECAR_LISTEN"] == "unix:/var/run/s2-sidecar/sidecar.sock"
    assert env_values(sidecar)["S2_SIDECAR_DEFAULT_BASIN"] == "orders-eu-1"


def test_not_opted_in_and_other_operations_are_allowed_unchanged(injector: Injector) -> None:
    pod = pods.minimal()
    del pod["metadata"]["labels"][ann.INJECT]
    assert set(injector.review(pod)) == {"uid", "allowed"}
    assert set(injector.review(pods.minimal(), operation="UPDATE")) == {"uid", "allowed"}


def test_unpatchable_pod_is_admitted_with_a_warning_and_counted(injector: Injector) -> None:
    sample = 's2_sidecar_injector_refused_total{reason="name_clash"}'
    before = injector.metric(sample)
    pod = pods.web_app()
    pod["spec"]["containers"][1]["name"] = "s2-sidecar"
    response = injector.review(pod)
    assert "patch" not in response
    assert len(response["warnings"]) == 1 and "container s2-sidecar exists" in response["warnings"][0]
    assert injector.metric(sample) == before + 1
    assert injector.metric('s2_sidecar_injector_reviews_total{outcome="refused"}') >= 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (
            b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}',
            "admission.k8s.io/v1",
        ),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request is missing"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": ""}}', "uid"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u",'
            b' "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE"}}',
            "request.object",
        ),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 200_000, "nested too deeply"),
    ],
)
def test_malformed_review_is_400_with_a_message(injector: Injector, body: bytes, message: str) -> None:
    before = injector.metric("s2_sidecar_injector_bad_requests_total")
    status, raw = injector.call("POST", "/mutate", body)
    assert status == 400
    assert message in raw.decode()
    assert injector.metric("s2_sidecar_injector_bad_requests_total") == before + 1
    assert injector.call("GET", "/healthz")[0] == 200  # still serving


def test_health_metrics_and_https_only(injector: Injector) -> None:
    assert injector.call("GET", "/healthz") == (200, b"ok\n")
    assert injector.call("GET", "/readyz") == (200, b"ok\n")
    status, raw = injector.call("GET", "/metrics")
    text = raw.decode()
    assert status == 200
    for family in ("reviews_total", "refused_total", "warnings_total", "bad_requests_total", "tls_reloads_total"):
        assert f"# TYPE s2_sidecar_injector_{family} counter" in text
    assert injector.call("GET", "/mutate")[0] == 405
    with socket.create_connection(("127.0.0.1", injector.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not s.recv(100).startswith(b"HTTP/1.1 200")  # plain HTTP is not served


# --------------------------------------------------------------------------------------- process


def test_certificate_is_reloaded_when_the_files_change(tmp_path: Path, default_render: Rendered) -> None:
    inj = _start(tmp_path, default_render.template_text, "--tls-reload-seconds", "0.1")
    try:
        new_ca = _renew_cert(inj)
        with pytest.raises(urllib.error.URLError):
            inj.call("GET", "/healthz")  # the old CA no longer matches
        assert inj.metric('s2_sidecar_injector_tls_reloads_total{result="ok"}', ca=new_ca) >= 1
    finally:
        output = _stop(inj)
    assert inj.proc.returncode == 0, output
    assert "TLS certificate reloaded" in output


def test_sigterm_stops_cleanly(tmp_path: Path, default_render: Rendered) -> None:
    inj = _start(tmp_path, default_render.template_text)
    output = _stop(inj)
    assert inj.proc.returncode == 0, output
    assert "draining" in output


def test_on_sigterm_readyz_fails_while_reviews_are_still_answered(tmp_path: Path, default_render: Rendered) -> None:
    """The drain: the Service stops routing to a pod whose /readyz fails, while requests already
    on their way are still answered (with failurePolicy Ignore a dropped one is a pod without its
    sidecar)."""
    inj = _start(tmp_path, default_render.template_text, "--drain-seconds", "120")
    try:
        inj.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STARTUP
        while inj.call("GET", "/readyz")[0] != 503:
            assert time.monotonic() < deadline, "/readyz never failed"
            time.sleep(0.1)
        assert inj.call("GET", "/healthz")[0] == 200
        response = inj.review(pods.minimal())
        assert response["patchType"] == "JSONPatch"
        assert inj.proc.poll() is None
    finally:
        inj.proc.kill()
        inj.proc.communicate(timeout=30)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "injector", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    proc = _cli("--template", "t.json", "--tls-key", "k")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "s2-sidecar: injector --tls-cert FILE is required (the admission webhook is served over HTTPS only)"
    ]
    bad = tmp_path / "template.json"
    bad.write_text('{"version": 7}')
    proc = _cli("--tls-cert", str(bad), "--tls-key", str(bad), "--template", str(bad))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"s2-sidecar: injector --template {bad}: version 7 is not 1 (render it with the matching chart)"
    )
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_minimal_template()))
    proc = _cli("--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", "k", "--template", str(good))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "missing.crt" in proc.stderr
    assert proc.stderr.strip() == f"s2-sidecar: injector --tls-cert {tmp_path / 'missing.crt'}: no such file"
    proc = _cli("--listen", "nowhere", "--tls-cert", "c", "--tls-key", "k", "--template", str(good))
    assert proc.returncode == 2 and "invalid injector --listen 'nowhere'" in proc.stderr


def _minimal_template() -> dict[str, Any]:
    variant = {
        "container": {"name": "s2-sidecar", "image": "s2-sidecar:0.1.0"},
        "volumes": None,
        "appEnv": [],
        "appVolumeMounts": None,
    }
    return {
        "version": 1,
        "name": "s2-sidecar",
        "native": True,
        "tokenSecret": {"key": "token"},
        "variants": {"tcp": variant, "unix": variant},
    }


# ---------------------------------------------------------------------------------------- bounds

MiB = 1024 * 1024
CHART_MEMORY_LIMIT = 256 * MiB  # injector.resources.limits.memory in values.yaml


def _review_body(pod: dict[str, Any]) -> bytes:
    request = {"uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Pod"},
               "operation": "CREATE", "namespace": "shop", "object": pod}  # fmt: skip
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}).encode()


def _sized(make: Any, size: int) -> bytes:
    """The biggest review body of make(count) that is at most `size` bytes."""
    low, high = 1, size // 3
    while low < high:
        mid = (low + high + 1) // 2
        if len(_review_body(make(mid))) <= size:
            low = mid
        else:
            high = mid - 1
    return _review_body(make(low))


def _post(inj: Injector, body: bytes) -> tuple[int, bytes]:
    """POST /mutate with a long timeout: reviews wait their turn, and this is not a speed test."""
    req = urllib.request.Request(f"https://localhost:{inj.port}/mutate", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=inj.context(), timeout=120) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:"))


def test_huge_reviews_are_bounded_and_health_keeps_answering(tmp_path: Path, default_render: Rendered) -> None:
    """Several huge reviews at once (a pod of 140,000 containers, bodies just under the body
    limit whose parse takes the most memory per byte, and a 7.9 MiB one over it): each is answered
    with a bounded answer that says what was refused, /healthz answers meanwhile, and the process
    stays under the chart's memory limit (it would be OOM-killed above it)."""
    inj = _start(tmp_path, default_render.template_text)
    try:
        many = _review_body(pods.tiny_containers(140_000))
        dense = _sized(pods.empty_objects, bounds.MAX_BODY)
        over = _sized(pods.tiny_containers, int(7.9 * MiB))
        bodies = [many, many, dense, dense, dense, dense, over]
        health: list[tuple[int, float]] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                started = time.monotonic()
                health.append((inj.call("GET", "/healthz")[0], time.monotonic() - started))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(len(bodies)) as pool:
                answers = list(pool.map(lambda body: _post(inj, body), bodies))
        finally:
            done.set()
            watcher.join()
        rss = _peak_rss(inj.proc.pid)
        refused = inj.metric('s2_sidecar_injector_refused_total{reason="too_many_containers"}')
        too_large = inj.metric("s2_sidecar_injector_bad_requests_total")
    finally:
        output = _stop(inj)

    for status, raw in answers[:2]:
        assert status == 200 and len(raw) < 4096, len(raw)
        response = json.loads(raw)["response"]
        assert response["allowed"] is True and "patch" not in response
        assert response["warnings"] == [
            "s2-sidecar not injected: the pod has 140000 containers and init containers;"
            f" the injector patches at most {bounds.MAX_CONTAINERS}"
        ]
    for status, raw in answers[2:6]:
        assert status == 200 and len(raw) < 64 * 1024
        assert json.loads(raw)["response"]["patchType"] == "JSONPatch"
    status, raw = answers[6]
    assert status == 413 and len(raw) < 4096
    assert f"is {len(over)} bytes; the injector reads at most {bounds.MAX_BODY}" in raw.decode()
    assert health and all(status == 200 for status, _ in health)
    worst = max(seconds for _, seconds in health)
    assert worst < 2.0, f"/healthz took {worst:.2f} s during the reviews"
    assert rss < CHART_MEMORY_LIMIT, f"peak RSS {rss / MiB:.0f} MiB"
    assert refused == 2 and too_large == 1
    assert "Traceback" not in output
    warnings = [line for line in output.splitlines() if " WARNING " in line]
    assert sum("too_many_containers" in line for line in warnings) == 2, output
    assert sum("over the body limit" in line for line in warnings) == 1, output


def test_malformed_pod_is_refused_with_a_warning_not_an_error(tmp_path: Path, default_render: Rendered) -> None:
    """mountPath as a list: a bad pod gets a malformed_pod refusal and one WARNING line,
    not reason=error and an ERROR traceback."""
    inj = _start(tmp_path, default_render.template_text)
    try:
        response = inj.review(pods.mount_path_as_list())
        malformed = inj.metric('s2_sidecar_injector_refused_total{reason="malformed_pod"}')
        errors = inj.metric('s2_sidecar_injector_refused_total{reason="error"}')
    finally:
        output = _stop(inj)
    assert "patch" not in response
    assert response["warnings"] == [
        "s2-sidecar not injected: container worker: volumeMounts[0].mountPath is missing or not a string"
    ]
    assert (malformed, errors) == (1, 0)
    assert "Traceback" not in output and " ERROR " not in output
    assert [line for line in output.splitlines() if "malformed_pod" in line and " WARNING " in line], output
