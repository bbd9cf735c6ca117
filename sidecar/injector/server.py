"""The injector's HTTPS server: POST /mutate, /healthz, /readyz, /metrics (aiohttp).

Thin on purpose: everything that decides what a pod gets is in `review` and `patch`. Whatever a
request holds, the server answers it; an unexpected error admits the pod unchanged, with a warning
and a metric, because the webhook must never be the reason a pod cannot be created.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from sidecar.injector import review
from sidecar.injector.bounds import MAX_BODY, WORK_BUDGET, WorkBudget, review_cost
from sidecar.injector.metrics import InjectorMetrics
from sidecar.injector.patch import Outcome
from sidecar.injector.template import SidecarTemplate, load_template
from sidecar.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InjectorConfig:
    host: str
    port: int
    tls_cert: Path
    tls_key: Path
    template: Path
    # Seconds between checks of the certificate files (a renewed Secret is swapped in place).
    tls_reload_seconds: float = 30.0
    # On SIGTERM: /readyz fails and requests are still served this long, while the Service stops
    # sending new ones (with failurePolicy Ignore a dropped request is a pod without its sidecar).
    drain_seconds: float = 5.0


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def _stamp(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    out = []
    for p in paths:
        st = p.stat()  # follows the ..data symlink a Secret volume swaps on update
        out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class TlsReloader:
    """Reloads the certificate into the live SSLContext when its files change: new handshakes get
    the new certificate, open connections keep theirs. A failed load (files half-written) keeps
    the old one and is retried at the next check."""

    def __init__(self, ctx: ssl.SSLContext, cert: Path, key: Path, metrics: InjectorMetrics) -> None:
        self._ctx, self._cert, self._key, self._metrics = ctx, cert, key, metrics
        self._stamp = _stamp(cert, key)

    def check(self) -> bool:
        """Reload if the files changed; True when a new certificate was loaded."""
        try:
            stamp = _stamp(self._cert, self._key)
            if stamp == self._stamp:
                return False
            self._ctx.load_cert_chain(self._cert, self._key)
        except (OSError, ssl.SSLError) as e:
            self._metrics.tls_reloads.labels("error").inc()
            log.warning("injector TLS reload failed, keeping the current certificate: %s", e)
            return False
        self._stamp = stamp
        self._metrics.tls_reloads.labels("ok").inc()
        log.info("injector TLS certificate reloaded from %s", self._cert)
        return True

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.check()


# Longest name or namespace Kubernetes accepts: the log shows no more of one (it is not validated
# yet when the webhook sees it).
_MAX_NAME = 253


def _describe(request: dict[str, Any]) -> str:
    pod = request.get("object") if isinstance(request.get("object"), dict) else {}
    meta = (pod or {}).get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name = meta.get("name") or meta.get("generateName") or request.get("name") or "?"
    return f"{str(request.get('namespace') or '?')[:_MAX_NAME]}/{str(name)[:_MAX_NAME]}"


@dataclass(frozen=True)
class Answer:
    """What `Injector.work` found, recorded (metrics, log) by `Injector.record` on the event loop."""

    status: int
    body: bytes
    outcome: Outcome | None  # None: HTTP 400, `about` says why
    about: str  # the pod, as the log names it
    seconds: float


class Injector:
    def __init__(self, template: SidecarTemplate, metrics: InjectorMetrics) -> None:
        self.template = template
        self.metrics = metrics
        self.draining = False
        self.budget = WorkBudget(WORK_BUDGET)

    def answer(self, body: bytes) -> tuple[int, bytes]:
        """(HTTP status, body) for a POST /mutate body."""
        return self.record(self.work(body))

    def work(self, body: bytes) -> Answer:
        """Parse, decide and encode: the CPU-heavy part, run off the event loop. It touches no
        metrics (they are updated on the event loop only), and what it parsed is freed here."""
        started = time.monotonic()
        try:
            request = review.parse(body)
            outcome = self._decide(request)
        except review.BadReview as e:
            return Answer(400, f"bad AdmissionReview: {e}\n".encode(), None, str(e), 0.0)
        answer = json.dumps(review.response(request, outcome)).encode()
        return Answer(200, answer, outcome, _describe(request), time.monotonic() - started)

    def record(self, answer: Answer) -> tuple[int, bytes]:
        outcome = answer.outcome
        if outcome is None:
            self.metrics.bad_requests.inc()
            log.warning("injector: bad AdmissionReview: %s", answer.about)
            return answer.status, answer.body
        self._count(outcome)
        if outcome.kind == "refused":
            # A pod that asked for the sidecar and goes without it: the operator should see it.
            warnings = "; ".join(review.short_warnings(outcome.warnings))
            log.warning("injector: refused %s (%s: %s)", answer.about, outcome.reason, warnings)
        elif outcome.kind in ("injected", "completed"):
            log.info("injector: %s %s", outcome.kind, answer.about)
        self.metrics.duration.observe(answer.seconds)
        return answer.status, answer.body

    def _decide(self, request: dict[str, Any]) -> Outcome:
        try:
            return review.decide(request, self.template)
        except review.BadReview:
            raise
        except Exception:  # a bug must not block (or crash on) a pod: admit it unchanged
            log.exception("injector error on %s; admitted unchanged", _describe(request))
            return Outcome("refused", warnings=["s2-sidecar not injected: injector error"], reason="error")

    def _count(self, outcome: Outcome) -> None:
        self.metrics.reviews.labels("error" if outcome.reason == "error" else outcome.kind).inc()
        if outcome.kind == "refused":
            self.metrics.refused.labels(outcome.reason).inc()
        if outcome.warnings:
            self.metrics.warnings.inc(len(outcome.warnings))

    def _too_large(self, length: int | None) -> web.Response:
        size = f"{length} bytes" if length is not None else f"over {MAX_BODY} bytes"
        message = (
            f"request body is {size}; the injector reads at most {MAX_BODY} (a pod Kubernetes can store is smaller)"
        )
        self.metrics.bad_requests.inc()
        log.warning("injector: review over the body limit, not read: %s", message)
        return web.Response(status=413, text=message + "\n")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/mutate", self._mutate)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _mutate(self, request: web.Request) -> web.Response:
        length = request.content_length
        if length is not None and length > MAX_BODY:
            return self._too_large(length)
        # Reserved before the body is read: a review waiting for room holds no more of it than
        # aiohttp's read buffer, so reviews at once cannot take more than the budget.
        async with self.budget.reserve(review_cost(length)):
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:  # chunked, without a Content-Length
                return self._too_large(None)
            answer = await asyncio.to_thread(self.work, raw)
        status, body = self.record(answer)
        content_type = "application/json" if status == 200 else "text/plain"
        return web.Response(status=status, body=body, content_type=content_type)

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.draining:
            return web.Response(status=503, text="draining\n")
        return web.Response(text="ok\n")

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.registry.render().encode(), headers={"Content-Type": CONTENT_TYPE})


def load(cfg: InjectorConfig) -> tuple[Injector, ssl.SSLContext]:
    """Read the template and the certificate; raises OSError, TemplateError or ssl.SSLError."""
    template = load_template(cfg.template.read_text())
    ctx = tls_context(cfg.tls_cert, cfg.tls_key)
    return Injector(template, InjectorMetrics()), ctx


async def serve(cfg: InjectorConfig, injector: Injector, ctx: ssl.SSLContext) -> None:
    """Serve until SIGTERM/SIGINT, then drain (see InjectorConfig.drain_seconds)."""
    runner = web.AppRunner(injector.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port, ssl_context=ctx)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloader = TlsReloader(ctx, cfg.tls_cert, cfg.tls_key, injector.metrics)
    reload_task = asyncio.create_task(reloader.run(cfg.tls_reload_seconds))
    log.info("injector listening on https://%s:%d (template %s)", cfg.host, cfg.port, cfg.template)
    try:
        await stop.wait()
        injector.draining = True
        log.info("injector stopping: draining for %.1fs", cfg.drain_seconds)
        await asyncio.sleep(cfg.drain_seconds)
    finally:
        reload_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reload_task
        await runner.cleanup()
