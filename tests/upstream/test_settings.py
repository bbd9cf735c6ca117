"""The upstream settings: flags, variables, validation, what `Config` builds from them, and what
the client builds from those."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from sidecar import config
from sidecar.upstream import BasinEndpoint, UpstreamClient, UpstreamFormat, UpstreamProtocol, UpstreamSettings
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
    assert isinstance(UpstreamClient(UpstreamSettings(BasinEndpoint.parse(url), protocol=protocol)).transport, kind)


def test_config_builds_every_upstream_setting(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    argv = [
        "--basin-endpoint", "https://{basin}.b.s2.dev/v1",
        "--upstream-format", "json", "--upstream-protocol", "http1",
        "--session-connections", "7", "--unary-connections", "8", "--long-poll-connections", "9",
        "--upstream-h2-connections", "2", "--connect-timeout", "1.5", "--request-timeout", "2.5",
        "--heartbeat-timeout", "3.5", "--upstream-ca-file", str(ca), "--max-message-bytes", str(8 * 1024 * 1024),
    ]  # fmt: skip
    settings = parse(argv, {"S2_ACCESS_TOKEN": "tok"}).upstream_settings()
    assert settings == UpstreamSettings(
        endpoint=BasinEndpoint.parse("https://{basin}.b.s2.dev/v1"),
        access_token="tok",
        format=UpstreamFormat.JSON,
        protocol=UpstreamProtocol.HTTP1,
        session_connections=7,
        unary_connections=8,
        long_poll_connections=9,
        h2_connections=2,
        connect_timeout=1.5,
        request_timeout=2.5,
        heartbeat_timeout=3.5,
        ca_file=str(ca),
        max_message_bytes=8 * 1024 * 1024,
    )
    # Every field came from the configuration: none was left at its default.
    defaults = UpstreamSettings(settings.endpoint)
    for f in dataclasses.fields(UpstreamSettings):
        if f.name != "endpoint":
            assert getattr(settings, f.name) != getattr(defaults, f.name), f.name
    assert "tok" not in repr(settings)


def test_the_defaults_agree() -> None:
    """The sidecar's defaults (`Config`) and a hand-built client's (`UpstreamSettings`) are one set."""
    url = "http://127.0.0.1:8080/v1"
    assert config.Config(basin_endpoint=url).upstream_settings() == UpstreamSettings(BasinEndpoint.parse(url))


def test_the_emulator_endpoint_is_passed_in() -> None:
    emulator = BasinEndpoint.parse("http://127.0.0.1:8080")
    assert config.Config().upstream_settings(emulator).endpoint == emulator
    with pytest.raises(ValueError, match="no basin endpoint"):
        config.Config().upstream_settings()
