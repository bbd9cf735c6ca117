"""`s2-sidecar`: serve (default), or `s2-sidecar emulator` to run only the S2 emulator."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from sidecar import config as config_mod
from sidecar.logs import register_secret, setup_logging

DESCRIPTION = """\
Read S2 streams from any language over localhost gRPC.

Serves s2sidecar.v1.StreamService (Read, ReadSession, CheckTail) with gRPC health and reflection.
Every flag has an environment variable; flags win. With no S2_BASIN_ENDPOINT the sidecar starts an
embedded S2 emulator and reads from it, so it works on a laptop with no account.
S2_ACCESS_TOKEN (env only) is the S2 access token; it is never logged.
S2_SIDECAR_APP_TOKEN (env only), if set, must be sent by apps as `authorization: Bearer <token>`.
"""


def _run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop  # faster unary calls (see PERFORMANCE.md); optional

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2-sidecar", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    config_mod.add_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="serve the gRPC API (the default)")
    emu = sub.add_parser("emulator", help="run only the S2-compatible emulator")
    emu.add_argument("--listen", dest="emulator_listen_only", default="127.0.0.1:8080", metavar="HOST:PORT",
                     help="where to listen (default: 127.0.0.1:8080)")  # fmt: skip
    emu.add_argument("--data-dir", dest="data_dir", default=None, metavar="DIR",
                     help="keep basins and streams in DIR (SQLite) instead of memory")  # fmt: skip
    emu.add_argument("--basin", dest="basins", action="append", default=[], metavar="NAME",
                     help="create basin NAME at start (repeatable), with create_stream_on_append and "
                     "create_stream_on_read on, so streams are created by their first append or read. "
                     "Without it, as in S2, there are no basins until created with POST /v1/basins, and "
                     "streams exist only once created")  # fmt: skip
    emu.add_argument("--require-token", dest="require_token", default=os.environ.get("S2_EMULATOR_REQUIRE_TOKEN"),
                     metavar="TOKEN", help="answer 401 unless this bearer token is sent "
                     "[env S2_EMULATOR_REQUIRE_TOKEN]")  # fmt: skip
    emu.add_argument("--tls-cert", dest="tls_cert", default=None, metavar="FILE",
                     help="serve TLS with this certificate chain (PEM), offering h2 and http/1.1 by ALPN; "
                     "without it the port serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c)")  # fmt: skip
    emu.add_argument("--tls-key", dest="tls_key", default=None, metavar="FILE",
                     help="the private key (PEM) of --tls-cert")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_mod.from_args(args)
    except ValueError as e:
        parser.error(str(e))
    setup_logging(cfg.log_level, cfg.log_format)
    register_secret(cfg.access_token)  # defence in depth: scrubbed from every log line
    register_secret(cfg.app_token)
    if args.command == "emulator":
        from sidecar.emulator import EmulatorConfig, serve
        from sidecar.server import _host_port

        try:
            host, port = _host_port(args.emulator_listen_only)
        except ValueError as e:
            parser.error(str(e))
        from sidecar.emulator import AUTO_CREATE
        from sidecar.wire.names import basin_name_problem

        for name in args.basins:
            if problem := basin_name_problem(name):
                parser.error(f"--basin {name!r}: {problem}")
        if (args.tls_cert is None) != (args.tls_key is None):
            parser.error("--tls-cert and --tls-key go together")
        emu_cfg = EmulatorConfig(
            host=host,
            port=port,
            data_dir=Path(args.data_dir) if args.data_dir else None,
            require_token=args.require_token,
            basins=dict.fromkeys(args.basins, AUTO_CREATE),
            tls_cert=Path(args.tls_cert) if args.tls_cert else None,
            tls_key=Path(args.tls_key) if args.tls_key else None,
        )
        _run(serve(emu_cfg))
        return
    from sidecar.server import run

    try:
        _run(run(cfg))
    except OSError as e:
        print(f"s2-sidecar: {e}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
