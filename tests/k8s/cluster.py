"""A real Kubernetes control plane on loopback: etcd and kube-apiserver, built by scripts/install-kube.

No kubelet and no controller manager: admission (the webhook included), defaulting, validation and
storage are real; nothing runs a pod, and nothing creates a namespace's `default` ServiceAccount
(`Cluster.namespace` does). Talked to over plain HTTPS with a bearer token (urllib).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.helm.helpers import REPO

BIN = REPO / ".tools" / "bin"
ETCD_BIN = Path(os.environ.get("ETCD_BIN", BIN / "etcd"))
APISERVER_BIN = Path(os.environ.get("KUBE_APISERVER_BIN", BIN / "kube-apiserver"))
STARTUP = 120.0  # seconds; ~25 s here, generous for a loaded machine

JSON = dict[str, Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binaries() -> None:
    """Fail (never skip) with one line when scripts/install-kube has not run."""
    for binary in (ETCD_BIN, APISERVER_BIN):
        assert binary.is_file() and os.access(binary, os.X_OK), (
            f"no {binary.name} at {binary}: run scripts/install-kube (builds etcd and kube-apiserver from tools/kube)"
        )


@dataclass
class Response:
    status: int
    body: JSON
    warnings: list[str]


@dataclass
class Cluster:
    url: str
    token: str
    ca_file: Path
    kubeconfig: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def call(self, method: str, path: str, body: JSON | None = None) -> Response:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._context(), timeout=60) as resp:
                return Response(resp.status, _parse(resp.read()), resp.headers.get_all("Warning") or [])
        except urllib.error.HTTPError as e:
            return Response(e.code, _parse(e.read()), e.headers.get_all("Warning") or [])

    def get(self, path: str) -> JSON:
        resp = self.call("GET", path)
        assert resp.status == 200, (path, resp.body)
        return resp.body

    def create(self, path: str, body: JSON) -> Response:
        resp = self.call("POST", path, body)
        assert resp.status == 201, (path, resp.status, resp.body)
        return resp

    def namespace(self, name: str, *service_accounts: str) -> None:
        """The namespace (if new) and its ServiceAccounts: `default` and the ones named (the
        ServiceAccount admission plugin refuses a pod whose account does not exist, and without a
        controller manager nobody else creates them)."""
        resp = self.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        assert resp.status in (201, 409), resp.body
        for sa in ("default", *service_accounts):
            resp = self.call("POST", f"/api/v1/namespaces/{name}/serviceaccounts", {"metadata": {"name": sa}})
            assert resp.status in (201, 409), resp.body

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _parse(raw: bytes) -> JSON:
    """A JSON object, or plain text (/readyz answers `ok`) as {"message": text}."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"message": raw.decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {"message": parsed}


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _service_account_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _env() -> dict[str, str]:
    # No proxy: the API server calls the webhook URL on loopback itself.
    return {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}


def start(tmp: Path) -> Cluster:
    """etcd, then kube-apiserver; returns once /readyz answers ok (every post-start hook done)."""
    require_binaries()
    ca = trustme.CA()
    serving = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert, key = tmp / "ca.crt", tmp / "apiserver.crt", tmp / "apiserver.key"
    ca.cert_pem.write_to_path(str(ca_file))
    serving.cert_chain_pems[0].write_to_path(str(cert))
    serving.private_key_pem.write_to_path(str(key))
    sa_key = tmp / "sa.key"
    _service_account_key(sa_key)
    token = os.urandom(16).hex()
    (tmp / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')

    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    url = f"https://127.0.0.1:{api_port}"
    cluster = Cluster(url, token, ca_file, tmp / "kubeconfig")
    etcd_log, api_log = tmp / "etcd.log", tmp / "kube-apiserver.log"
    cluster.logs = [etcd_log, api_log]
    env = _env()
    with etcd_log.open("wb") as out:
        cluster.procs.append(subprocess.Popen(
            [str(ETCD_BIN), "--name", "test", "--data-dir", str(tmp / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-cluster", f"test=http://127.0.0.1:{peer_port}",
             "--unsafe-no-fsync", "--log-level", "warn"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        ))  # fmt: skip
    with api_log.open("wb") as out:
        cluster.procs.append(subprocess.Popen(
            [str(APISERVER_BIN), "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
             "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(api_port),
             "--tls-cert-file", str(cert), "--tls-private-key-file", str(key),
             "--token-auth-file", str(tmp / "tokens.csv"), "--authorization-mode", "RBAC",
             "--service-account-key-file", str(sa_key), "--service-account-signing-key-file", str(sa_key),
             "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
             "--service-cluster-ip-range", "10.96.0.0/16", "--profiling=false", "-v", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        ))  # fmt: skip
    cluster.kubeconfig.write_text(
        json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": url, "certificate-authority": str(ca_file)}}],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        })
    )  # fmt: skip
    deadline = time.monotonic() + STARTUP
    while True:
        for proc, log in zip(cluster.procs, cluster.logs, strict=True):
            if proc.poll() is not None:
                cluster.stop()
                raise AssertionError(f"{log.stem} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if cluster.call("GET", "/readyz").status == 200:
                return cluster
        except OSError:
            pass
        if time.monotonic() > deadline:
            cluster.stop()
            raise AssertionError(f"kube-apiserver not ready after {STARTUP:.0f} s:\n{_tail(api_log)}")
        time.sleep(0.5)
