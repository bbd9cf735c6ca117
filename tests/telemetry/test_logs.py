"""`setup_logging`: JSON lines, trace ids inside a span, and secrets scrubbed everywhere."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sidecar import logs
from sidecar.telemetry import setup_tracing

SECRET = "s2-token-Zm9vYmFy\\x"


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    yield stream
    logs.clear_secrets()
    for h in [h for h in root.handlers if isinstance(h, logs._SidecarHandler)]:
        root.removeHandler(h)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines(out: io.StringIO) -> None:
    logs.setup_logging("info", "json", stream=out)
    log = logging.getLogger("sidecar.test")
    log.debug("hidden")
    log.info("hello %s", "world")
    logging.getLogger(logs.ACCESS_LOGGER).info("rpc", extra={"rpc_method": "Read", "grpc_code": "OK", "ms": 1.5})
    first, access = (json.loads(line) for line in _lines(out))
    assert first["message"] == "hello world"
    assert (first["level"], first["logger"]) == ("info", "sidecar.test")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert datetime.fromisoformat(first["time"]).utcoffset() is not None
    assert "trace_id" not in first and "exception" not in first
    assert (access["logger"], access["rpc_method"], access["grpc_code"], access["ms"]) == (
        "s2_sidecar.access", "Read", "OK", 1.5)  # fmt: skip


def test_json_carries_trace_and_span_ids(out: io.StringIO) -> None:
    logs.setup_logging("debug", "json", stream=out)
    provider = setup_tracing({}, exporter=InMemorySpanExporter())
    assert provider is not None
    with provider.get_tracer("t").start_as_current_span("op") as span:
        logging.getLogger("sidecar.test").debug("inside")
    sc = span.get_span_context()
    [entry] = (json.loads(line) for line in _lines(out))
    assert entry["trace_id"] == f"{sc.trace_id:032x}"
    assert entry["span_id"] == f"{sc.span_id:016x}"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_scrubbed_even_in_exceptions(out: io.StringIO, fmt: str) -> None:
    logs.setup_logging("info", fmt, stream=out)
    logs.register_secret(SECRET)
    logs.register_secret("")  # ignored
    logs.register_secret(None)
    log = logging.getLogger("sidecar.test")
    try:
        raise ValueError(f"upstream said no to Bearer {SECRET}")
    except ValueError:
        log.exception("failed with token %s", SECRET, extra={"header": f"Bearer {SECRET}"})
    text = out.getvalue()
    assert SECRET not in text
    assert json.dumps(SECRET)[1:-1] not in text  # nor its JSON-escaped form
    assert "Bearer ***" in text and "failed with token ***" in text
    if fmt == "json":
        [entry] = (json.loads(line) for line in _lines(out))
        assert "ValueError: upstream said no to Bearer ***" in entry["exception"]
        assert entry["header"] == "Bearer ***"
    else:
        assert "Traceback" in text and "ValueError: upstream said no to Bearer ***" in text


def test_text_format_and_replacement(out: io.StringIO) -> None:
    logs.setup_logging("warning", "text", stream=out)
    logs.setup_logging("info", "text", stream=out)  # replaces, does not duplicate
    logging.getLogger("sidecar.test").info("one line", extra={"code": "OK"})
    [line] = _lines(out)
    assert re.fullmatch(r"\S+Z INFO sidecar\.test: one line code=OK", line)


def test_bad_settings_refused() -> None:
    with pytest.raises(ValueError):
        logs.setup_logging("loud", "text")
    with pytest.raises(ValueError):
        logs.setup_logging("info", "xml")
