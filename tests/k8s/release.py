"""The chart installed with helm into the real API server, its webhook pointed (injector.webhook.url)
at an injector process run here on loopback with the certificate the chart generated."""

from __future__ import annotations

import base64
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helm.helpers import CHART, REPO, Helm
from tests.k8s.cluster import Cluster

NAMESPACE = "s2-system"
RELEASE = "s2"
INJECTOR = f"{RELEASE}-s2-sidecar-injector"
WEBHOOK = f"{NAMESPACE}-{INJECTOR}"  # the MutatingWebhookConfiguration (cluster-scoped)
EXCLUDED = "batch"  # injector.webhook.excludeNamespaces
STARTUP = 30.0


@dataclass
class InjectorProcess:
    """`python -m sidecar injector` serving the chart's Secret and ConfigMap, stopped and started again
    on the same port (the webhook's URL)."""

    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    output: list[str] = field(default_factory=list)

    def load(self, cluster: Cluster) -> None:
        """The certificate, key and template.json as the chart stored them in the API server."""
        secret = cluster.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{INJECTOR}-tls")["data"]
        for name in ("ca.crt", "tls.crt", "tls.key"):
            (self.dir / name).write_bytes(base64.b64decode(secret[name]))
        config = cluster.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{INJECTOR}-template")
        (self.dir / "template.json").write_text(config["data"]["template.json"])

    def start(self) -> None:
        assert self.proc is None
        d = self.dir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "injector", "--listen", f"127.0.0.1:{self.port}",
             "--tls-cert", str(d / "tls.crt"), "--tls-key", str(d / "tls.key"), "--template", str(d / "template.json"),
             "--drain-seconds", "0", "--log-format", "text"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + STARTUP
        while True:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise AssertionError(f"injector exited with {self.proc.returncode}:\n{out}")
            try:
                if self.call("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, "injector did not become ready"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        self.output.append(out.decode())
        code, self.proc = self.proc.returncode, None
        assert code == 0, self.output[-1]

    def call(self, path: str) -> tuple[int, bytes]:
        # Trusts the chart's CA only, and checks the certificate names 127.0.0.1: what the API server does.
        ctx = ssl.create_default_context(cafile=str(self.dir / "ca.crt"))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.port}{path}", context=ctx, timeout=10) as resp:
            return resp.status, resp.read()

    def reviews(self) -> float:
        """AdmissionReviews answered so far (every outcome): how many times the API server called."""
        _, raw = self.call("/metrics")
        return sum(
            float(line.split()[-1])
            for line in raw.decode().splitlines()
            if line.startswith("s2_sidecar_injector_reviews_total{")
        )


@dataclass
class Release:
    cluster: Cluster
    helm: Helm
    injector: InjectorProcess

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.injector.port}/mutate"

    def helm_run(self, *args: str) -> None:
        proc = self.helm.run(*args, "--kubeconfig", str(self.cluster.kubeconfig), timeout=300)
        assert proc.returncode == 0, f"helm {args[0]} failed:\n{proc.stderr}"

    def install(self) -> None:
        self.helm_run(
            "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
            "--set", f"injector.webhook.url={self.url}", "--set", f"injector.webhook.excludeNamespaces={{{EXCLUDED}}}",
        )  # fmt: skip

    def upgrade(self, *sets: str) -> None:
        args = ["upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values"]
        for s in sets:
            args += ["--set", s]
        self.helm_run(*args)

    def webhook(self) -> dict[str, Any]:
        config = self.cluster.get(f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{WEBHOOK}")
        (hook,) = config["webhooks"]
        return dict(hook)

    def tls_secret(self) -> dict[str, str]:
        return dict(self.cluster.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{INJECTOR}-tls")["data"])
