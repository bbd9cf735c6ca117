"""The upstream protocol settings: flags, variables, validation, and what the sidecar builds."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sidecar import config
from sidecar.config import UpstreamProtocol
from sidecar.upstream import BasinEndpoint, UpstreamClient
from sidecar.upstream.http1 import Http1Transport
from sidecar.upstream.http2 import Http2Transport
from sidecar.upstream.negotiate import AutoTransport


def parse(argv: list[str], env: dict[str, str] | None = None) -> config.Config:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.from_args(parser.parse_args(argv), env or {})


def test_defaults() -> None:
    cfg = parse([])
    assert cfg.upstream_protocol is UpstreamProtocol.AUTO
    assert cfg.upstream_ca_file is None
    assert cfg.upstream_h2_connections == 4


def test_flags_and_variables(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    cfg = parse(["--upstream-protocol", "http2", "--upstream-ca-file", str(ca), "--upstream-h2-connections", "2"])
    assert (cfg.upstream_protocol, cfg.upstream_ca_file, cfg.upstream_h2_connections) == (
        UpstreamProtocol.HTTP2, str(ca), 2,
    )  # fmt: skip
    env = {
        "S2_SIDECAR_UPSTREAM_PROTOCOL": "http1",
        "S2_SIDECAR_UPSTREAM_CA_FILE": str(ca),
        "S2_SIDECAR_UPSTREAM_H2_CONNECTIONS": "8",
    }
    cfg = parse([], env)
    assert (cfg.upstream_protocol, cfg.upstream_ca_file, cfg.upstream_h2_connections) == (
        UpstreamProtocol.HTTP1, str(ca), 8,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--upstream-protocol", "http3"], "--upstream-protocol 'http3' .*must be auto, http1 or http2"),
        (["--upstream-ca-file", "/no/such/ca.pem"], "no such file"),
        (["--upstream-h2-connections", "0"], "must be positive"),
    ],
)
def test_bad_values_are_clear(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(argv)


def test_help_names_the_new_settings() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    for needle in ("S2_SIDECAR_UPSTREAM_PROTOCOL", "S2_SIDECAR_UPSTREAM_CA_FILE", "S2_SIDECAR_UPSTREAM_H2_CONNECTIONS"):
        assert needle in text


@pytest.mark.parametrize(
    ("url", "protocol", "kind"),
    [
        ("http://127.0.0.1:8080", UpstreamProtocol.AUTO, Http1Transport),
        ("https://{basin}.b.s2.dev", UpstreamProtocol.AUTO, AutoTransport),
        ("http://127.0.0.1:8080", UpstreamProtocol.HTTP2, Http2Transport),
        ("https://{basin}.b.s2.dev", UpstreamProtocol.HTTP1, Http1Transport),
    ],
)
def test_which_transport(url: str, protocol: UpstreamProtocol, kind: type) -> None:
    assert isinstance(UpstreamClient(BasinEndpoint.parse(url), protocol=protocol).transport, kind)
