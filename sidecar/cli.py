"""`s2-sidecar`: serve (default), `s2-sidecar emulator` to run only the S2 emulator, or
`s2-sidecar injector` to serve the Kubernetes admission webhook that injects the sidecar."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import os
import ssl
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

from sidecar import config as config_mod
from sidecar.listeners import ListenError, bind_error, ensure_available, parse_host_port
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
        import uvloop  # +15-25% unary calls/s in a measurement on 2 cores; optional

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


COMMANDS = {
    "serve": "serve the gRPC API (the default)",
    "emulator": "run only the S2-compatible emulator",
    "injector": "serve the Kubernetes admission webhook that adds the sidecar to pods",
}


class _Parser(argparse.ArgumentParser):
    """Errors in one line naming what to change; argparse's default prints the whole usage
    (25 lines) first, and hides the mistake."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see {self.prog} --help)")


def _fail(message: str) -> NoReturn:
    print(f"s2-sidecar: {message}", file=sys.stderr)
    raise SystemExit(2)


def build_parser(command: str = "serve") -> argparse.ArgumentParser:
    if command == "emulator":
        emu = _Parser(prog="s2-sidecar emulator", allow_abbrev=False, description=COMMANDS["emulator"])
        emu.add_argument("--listen", dest="emulator_listen_only", default="127.0.0.1:8080", metavar="HOST:PORT",
                         help="where to listen (default: 127.0.0.1:8080)")  # fmt: skip
        emu.add_argument("--data-dir", dest="data_dir", default=None, metavar="DIR",
                         help="keep basins and streams in DIR (SQLite) instead of memory")  # fmt: skip
        emu.add_argument("--basin", dest="basins", action="append", default=[], metavar="NAME",
                         help="create basin NAME at start (repeatable), with create_stream_on_append and "
                         "create_stream_on_read on, so streams are created by their first append or read. "
                         "Without it, as in S2, there are no basins until created with POST /v1/basins, and "
                         "streams exist only once created")  # fmt: skip
        emu.add_argument("--require-token", dest="require_token",
                         default=os.environ.get("S2_EMULATOR_REQUIRE_TOKEN"), metavar="TOKEN",
                         help="answer 401 unless this bearer token is sent "
                         "[env S2_EMULATOR_REQUIRE_TOKEN]")  # fmt: skip
        emu.add_argument("--tls-cert", dest="tls_cert", default=None, metavar="FILE",
                         help="serve TLS with this certificate chain (PEM), offering h2 and http/1.1 by ALPN; "
                         "without it the port serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c)")  # fmt: skip
        emu.add_argument("--tls-key", dest="tls_key", default=None, metavar="FILE",
                         help="the private key (PEM) of --tls-cert")  # fmt: skip
        emu.add_argument("--deletion-delay", dest="deletion_delay", default="0.02", metavar="SECONDS",
                         help="how long a deleted basin or stream stays listed with deleted_at, answering "
                         "409 *_deletion_pending, as S2 deletes in the background (default: 0.02; 0: gone "
                         "before the 202)")  # fmt: skip
        emu.add_argument("--shutdown-grace", dest="shutdown_grace", default="10", metavar="SECONDS",
                         help="on SIGTERM or SIGINT, stop taking connections and let open reads go on this long, "
                         "then hang up, as s2-lite does (default: 10)")  # fmt: skip
        config_mod.add_arguments(emu, only=("log_level", "log_format"))
        return emu
    if command == "injector":
        return _injector_parser()
    commands = "\n".join(f"  {name:<10} {text}" for name, text in COMMANDS.items())
    parser = _Parser(
        prog="s2-sidecar",
        usage="s2-sidecar [COMMAND] [OPTIONS]",
        description=DESCRIPTION,
        epilog=f"commands (options go before or after the command):\n{commands}\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # a misspelt flag is an error, never a guess
    )
    config_mod.add_arguments(parser)
    return parser


def _injector_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    about = " (AdmissionReview admission.k8s.io/v1 on POST /mutate over HTTPS; see helm/s2-sidecar)"
    inj = _Parser(prog="s2-sidecar injector", allow_abbrev=False, description=COMMANDS["injector"] + about)
    inj.add_argument("--listen", dest="injector_listen", default=env("S2_SIDECAR_INJECTOR_LISTEN", "0.0.0.0:8443"),
                     metavar="HOST:PORT", help="where to serve HTTPS (default: 0.0.0.0:8443) "
                     "[env S2_SIDECAR_INJECTOR_LISTEN]")  # fmt: skip
    inj.add_argument("--tls-cert", dest="tls_cert", default=env("S2_SIDECAR_INJECTOR_TLS_CERT"), metavar="FILE",
                     help="serving certificate chain (PEM), reloaded when the file changes "
                     "[env S2_SIDECAR_INJECTOR_TLS_CERT]")  # fmt: skip
    inj.add_argument("--tls-key", dest="tls_key", default=env("S2_SIDECAR_INJECTOR_TLS_KEY"), metavar="FILE",
                     help="private key (PEM) of --tls-cert [env S2_SIDECAR_INJECTOR_TLS_KEY]")  # fmt: skip
    inj.add_argument("--template", dest="template", default=env("S2_SIDECAR_INJECTOR_TEMPLATE"), metavar="FILE",
                     help="the sidecar to inject: template.json as the chart renders it into its ConfigMap "
                     "[env S2_SIDECAR_INJECTOR_TEMPLATE]")  # fmt: skip
    inj.add_argument("--tls-reload-seconds", dest="tls_reload_seconds",
                     default=env("S2_SIDECAR_INJECTOR_TLS_RELOAD_SECONDS", "30"), metavar="SECONDS",
                     help="how often to check the certificate files for changes (default: 30) "
                     "[env S2_SIDECAR_INJECTOR_TLS_RELOAD_SECONDS]")  # fmt: skip
    inj.add_argument("--drain-seconds", dest="drain_seconds", default=env("S2_SIDECAR_INJECTOR_DRAIN_SECONDS", "5"),
                     metavar="SECONDS", help="on SIGTERM, keep serving this long with /readyz failing (default: 5) "
                     "[env S2_SIDECAR_INJECTOR_DRAIN_SECONDS]")  # fmt: skip
    config_mod.add_arguments(inj, only=("log_level", "log_format"))
    return inj


def _split_command(argv: Sequence[str]) -> tuple[str, list[str]]:
    """The command word, wherever it stands among the options, and the options. Every option takes a
    value (`--flag V` or `--flag=V`) except -h/--help, so a word is a value exactly when it follows
    an option that did not carry one with `=`."""
    rest = list(argv)
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "--":
            break
        if word.startswith("-"):
            i += 1 if ("=" in word or word in ("-h", "--help")) else 2
            continue
        if word in COMMANDS:
            del rest[i]
            return word, rest
        _fail(f"unknown command {word!r}: the commands are {', '.join(COMMANDS)} (see s2-sidecar --help)")
    return "serve", rest


# Options the sidecar took once and does no more, with what to do instead: a command line written
# for an older sidecar is told why, not offered a different flag.
REMOVED_OPTIONS = {
    "--account-endpoint": "the sidecar talks to the basin endpoint only (--basin-endpoint); drop it",
}


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    args, extras = parser.parse_known_args(argv)
    if extras:
        word = extras[0]
        if word.startswith("-"):
            known = [opt for action in parser._actions for opt in action.option_strings]
            name = word.split("=", 1)[0]
            if name in REMOVED_OPTIONS:
                _fail(f"option {name} was removed: {REMOVED_OPTIONS[name]}")
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            _fail(f"unknown option {name}{hint} (see {parser.prog} --help)")
        _fail(f"unexpected argument {word!r} (see {parser.prog} --help)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    command, rest = _split_command(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command)
    args = _parse(parser, rest)
    try:
        cfg = config_mod.from_args(args)
    except ValueError as e:
        _fail(str(e))
    setup_logging(cfg.log_level, cfg.log_format)
    register_secret(cfg.access_token)  # defence in depth: scrubbed from every log line
    register_secret(cfg.app_token)
    if command == "emulator":
        _run_emulator(args)
        return
    if command == "injector":
        _run_injector(args)
        return
    from sidecar.server import run

    try:
        _run(run(cfg))
    except ListenError as e:
        _fail(str(e))
    except OSError as e:
        print(f"s2-sidecar: {e}", file=sys.stderr)
        raise SystemExit(1) from None


def _run_emulator(args: argparse.Namespace) -> None:
    from sidecar.emulator import AUTO_CREATE, EmulatorConfig, serve
    from sidecar.wire.names import basin_name_problem

    try:
        addr = parse_host_port(args.emulator_listen_only)
    except ValueError as e:
        _fail(f"invalid emulator --listen {args.emulator_listen_only!r}: {e}; for example 127.0.0.1:8080")
    for name in args.basins:
        if problem := basin_name_problem(name):
            _fail(f"invalid emulator --basin {name!r}: {problem}; for example my-basin-01")
    if (args.tls_cert is None) != (args.tls_key is None):
        _fail("emulator --tls-cert and --tls-key go together: give both, or neither")
    deletion_delay = _seconds(args, "deletion_delay", "emulator")
    shutdown_grace = _seconds(args, "shutdown_grace", "emulator")
    emu_cfg = EmulatorConfig(
        host=addr.host,
        port=addr.port,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        require_token=args.require_token,
        basins=dict.fromkeys(args.basins, AUTO_CREATE),
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        deletion_delay=deletion_delay,
    )
    try:
        ensure_available(addr, "emulator --listen")
        _run(serve(emu_cfg, shutdown_grace))
    except ListenError as e:
        _fail(str(e))
    except OSError as e:  # the port was taken between the check and the bind
        _fail(str(bind_error(addr, "emulator --listen", e)))


def _seconds(args: argparse.Namespace, name: str, command: str = "injector") -> float:
    raw = getattr(args, name)
    flag = "--" + name.replace("_", "-")
    try:
        value = float(raw)
    except ValueError:
        _fail(f"invalid {command} {flag} {raw!r}: not a number; for example 5")
    if not value >= 0:
        _fail(f"invalid {command} {flag} {raw!r}: must be >= 0")
    return value


def _run_injector(args: argparse.Namespace) -> None:
    from sidecar.injector.server import InjectorConfig, load, serve
    from sidecar.injector.template import TemplateError

    try:
        addr = parse_host_port(args.injector_listen)
    except ValueError as e:
        _fail(f"invalid injector --listen {args.injector_listen!r}: {e}; for example 0.0.0.0:8443")
    for flag, value in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key), ("--template", args.template)):
        if not value:
            _fail(f"injector {flag} FILE is required (the admission webhook is served over HTTPS only)")
        if not Path(value).is_file():
            _fail(f"injector {flag} {value}: no such file")
    cfg = InjectorConfig(
        host=addr.host,
        port=addr.port,
        tls_cert=Path(args.tls_cert),
        tls_key=Path(args.tls_key),
        template=Path(args.template),
        tls_reload_seconds=max(_seconds(args, "tls_reload_seconds"), 0.1),
        drain_seconds=_seconds(args, "drain_seconds"),
    )
    try:
        injector, ctx = load(cfg)
    except TemplateError as e:
        _fail(f"injector --template {cfg.template}: {e}")
    except (OSError, ssl.SSLError) as e:  # unreadable, or a key that does not match the certificate
        _fail(f"injector: cannot load --tls-cert {cfg.tls_cert} / --tls-key {cfg.tls_key} / --template: {e}")
    try:
        ensure_available(addr, "injector --listen")
        _run(serve(cfg, injector, ctx))
    except ListenError as e:
        _fail(str(e))
    except OSError as e:  # the port was taken between the check and the bind
        _fail(str(bind_error(addr, "injector --listen", e)))


if __name__ == "__main__":
    main()
