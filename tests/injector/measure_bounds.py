"""Measure the injector on huge pods: time, answer size, peak RSS, /healthz latency meanwhile.

Not a test (no assertions on speed): the figures behind the bounds in helm/s2-sidecar/README.md.
Run from the repo root: `python -m tests.injector.measure_bounds` (HELM_BIN=... to skip the install).
Each case runs a fresh injector process, so its peak RSS (VmHWM) is that case's alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.helm.helpers import HELM_BIN, Helm
from tests.injector import chart, pods
from tests.injector.test_server import Injector, _peak_rss, _post, _review_body, _sized, _start, _stop

MiB = 1024 * 1024


def health_watch(inj: Injector, stop: threading.Event, worst: list[float]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        with contextlib.suppress(OSError):
            inj.call("GET", "/healthz")
        worst[0] = max(worst[0], time.monotonic() - started)
        time.sleep(0.05)


def measure(template_text: str, label: str, body: bytes, parallel: int = 1) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inj = _start(Path(tmp), template_text)
        try:
            stop, worst = threading.Event(), [0.0]
            watcher = threading.Thread(target=health_watch, args=(inj, stop, worst))
            watcher.start()
            started = time.monotonic()
            with ThreadPoolExecutor(parallel) as pool:
                answers = list(pool.map(lambda _: _post(inj, body), range(parallel)))
            elapsed = time.monotonic() - started
            stop.set()
            watcher.join()
            rss = _peak_rss(inj.proc.pid)
        finally:
            output = _stop(inj)
        status, raw = answers[0]
        warning = ""
        if status == 200:
            warning = "; ".join(json.loads(raw)["response"].get("warnings", []))[:120]
        print(
            f"{label}: body {len(body) / MiB:.1f} MiB x{parallel}: {elapsed:.2f} s, HTTP {status}, "
            f"answer {len(raw) / 1024:.1f} KiB, peak RSS {rss / MiB:.0f} MiB, "
            f"worst /healthz {worst[0]:.2f} s; {warning}"
        )
        tracebacks = output.count("Traceback")
        if tracebacks:
            print(f"  {tracebacks} traceback(s) in the log")


def main() -> None:
    helm_bin = Path(os.environ.get("HELM_BIN", HELM_BIN))
    helm = Helm(helm_bin, {"PATH": os.environ.get("PATH", ""), "HOME": tempfile.mkdtemp()})
    template_text = chart.render(helm).template_text
    many = _review_body(pods.tiny_containers(140_000))
    over = _sized(pods.tiny_containers, int(7.9 * MiB))
    dense = _sized(pods.empty_objects, 4 * MiB)
    measure(template_text, "1 container", _review_body(pods.minimal()))
    measure(template_text, "140,000 containers", many)
    measure(template_text, "140,000 containers", many, parallel=4)
    measure(template_text, "7.9 MiB of containers", over)
    measure(template_text, "7.9 MiB of containers", over, parallel=4)
    measure(template_text, "4 MiB env of {}", dense)
    measure(template_text, "4 MiB env of {}", dense, parallel=4)


if __name__ == "__main__":
    main()
