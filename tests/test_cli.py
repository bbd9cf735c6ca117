"""The command line as a new user meets it: a taken address, an invalid setting or a misspelt flag
stops the process before it listens, with exit status 2 and one line that names the flag and
variable, the bad value and a valid example; options go before or after the command."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar import cli
from sidecar import config as config_mod
from sidecar.testing import SidecarProcess, free_port


def run_cli(
    argv: list[str], env: dict[str, str] | None = None, capsys: pytest.CaptureFixture[str] | None = None
) -> str:
    """`s2-sidecar ARGV` in-process (validation happens before anything starts); its stderr."""
    assert capsys is not None
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, f"not one line:\n{err}"
    return err


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # Observed: started, then every call failed with a message about a request field.
        ({"S2_SIDECAR_DEFAULT_BASIN": "My_Basin"}, "S2_SIDECAR_DEFAULT_BASIN='My_Basin' (or flag --default-basin): basin name must use only a-z"),
        # Observed: a 25-line traceback whose last line did not name the variable.
        ({"S2_BASIN_ENDPOINT": "http//127.0.0.1:8080/v1"}, "S2_BASIN_ENDPOINT='http//127.0.0.1:8080/v1' (or flag --basin-endpoint): basin endpoint must be an http(s) URL"),
        ({"S2_SIDECAR_LISTEN": "localhost"}, "S2_SIDECAR_LISTEN='localhost' (or flag --listen): 'localhost': expected HOST:PORT"),
        ({"S2_SIDECAR_LISTEN": "127.0.0.1:99999"}, "port must be a number from 0 to 65535"),
        ({"S2_SIDECAR_ADMIN_LISTEN": "9090"}, "S2_SIDECAR_ADMIN_LISTEN='9090' (or flag --admin-listen): expected HOST:PORT"),
        ({"S2_SIDECAR_EMULATOR_LISTEN": "127.0.0.1:x"}, "S2_SIDECAR_EMULATOR_LISTEN='127.0.0.1:x'"),
        ({"S2_SIDECAR_SESSION_CONNECTIONS": "many"}, "S2_SIDECAR_SESSION_CONNECTIONS='many' (or flag --session-connections): must be a whole number; for example 100"),
        ({"S2_SIDECAR_GRACE_PERIOD": "-1"}, "S2_SIDECAR_GRACE_PERIOD='-1' (or flag --grace-period): must be positive; for example 30"),
        ({"S2_SIDECAR_UPSTREAM_PROTOCOL": "h3"}, "must be auto, http1 or http2"),
        ({"S2_SIDECAR_SHARE_SESSIONS": "maybe"}, "expected true or false; for example true"),
        ({"S2_SIDECAR_LOG_LEVEL": "loud"}, "must be debug, info, warning or error; for example info"),
        ({"S2_SIDECAR_UNIX_SOCKET_MODE": "rw"}, "must be an octal file mode; for example 0600"),
        ({"S2_SIDECAR_UPSTREAM_CA_FILE": "/nonexistent.pem"}, "S2_SIDECAR_UPSTREAM_CA_FILE='/nonexistent.pem' (or flag --upstream-ca-file): no such file"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)  # fmt: skip
def test_an_invalid_setting_stops_the_process_with_one_line(
    env: dict[str, str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = run_cli([], env, capsys)
    assert err.startswith("s2-sidecar: invalid ")
    assert expected in err


def test_a_flag_names_itself_and_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    err = run_cli(["--default-basin", "My_Basin"], capsys=capsys)
    assert "invalid --default-basin 'My_Basin' (or env S2_SIDECAR_DEFAULT_BASIN)" in err
    assert err.rstrip().endswith("for example my-basin-01")


def test_a_misspelt_flag_is_an_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    # Observed: "invalid choice: 'http://x'" (argparse took the value for a command).
    err = run_cli(["--basin-endpiont", "http://x"], capsys=capsys)
    assert "unknown option --basin-endpiont (did you mean --basin-endpoint?)" in err
    err = run_cli(["serve", "--basin-endpiont=http://x"], capsys=capsys)
    assert "unknown option --basin-endpiont (did you mean --basin-endpoint?)" in err
    err = run_cli(["--list", "127.0.0.1:1"], capsys=capsys)  # no abbreviations: a typo is never a guess
    assert "unknown option --list" in err


@pytest.mark.parametrize("value", ["aws.s2.dev", "https://aws.s2.dev/v1", "not a URL", ""])
def test_s2_account_endpoint_is_left_to_the_apps(value: str) -> None:
    """S2's SDKs read S2_ACCOUNT_ENDPOINT (the Rust SDK takes a bare host such as aws.s2.dev), so a
    pod may set it for its app containers; the sidecar talks to the basin endpoint only and ignores
    it, whatever it holds."""
    args = cli.build_parser().parse_args([])
    assert config_mod.from_args(args, {"S2_ACCOUNT_ENDPOINT": value}) == config_mod.from_args(args, {})
    assert "S2_ACCOUNT_ENDPOINT" not in {s.env for s in config_mod.SETTINGS}


def test_the_removed_account_endpoint_flag_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--account-endpoint", "https://aws.s2.dev/v1"],
        ["serve", "--account-endpoint=https://aws.s2.dev/v1"],
    ):
        err = run_cli(argv, capsys=capsys)
        assert err == (
            "s2-sidecar: option --account-endpoint was removed: the sidecar talks to the basin endpoint only "
            "(--basin-endpoint); drop it\n"
        )


def test_an_unknown_command_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    err = run_cli(["serv"], capsys=capsys)
    assert "unknown command 'serv': the commands are serve, emulator" in err


def test_emulator_settings_are_checked_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid emulator --listen '8080': expected HOST:PORT" in run_cli(
        ["emulator", "--listen", "8080"], capsys=capsys
    )
    assert "invalid emulator --basin 'X'" in run_cli(["emulator", "--basin", "X"], capsys=capsys)
    assert "go together" in run_cli(["emulator", "--tls-cert", "c.pem"], capsys=capsys)
    assert "invalid emulator --deletion-delay 'soon': not a number" in run_cli(
        ["emulator", "--deletion-delay", "soon"], capsys=capsys
    )
    assert "invalid emulator --deletion-delay '-1': must be >= 0" in run_cli(
        ["emulator", "--deletion-delay", "-1"], capsys=capsys
    )
    assert "invalid emulator --shutdown-grace '-1': must be >= 0" in run_cli(
        ["emulator", "--shutdown-grace", "-1"], capsys=capsys
    )
    assert "must be debug, info" in run_cli(["emulator", "--log-level", "loud"], capsys=capsys)


async def _exit_of(*argv: str, within: float = 30) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


@pytest.mark.parametrize("where", ["before", "after"])
async def test_options_go_before_or_after_the_command(where: str) -> None:
    port = free_port()
    opts = ["--listen", f"127.0.0.1:{port}", "--emulator-listen", f"127.0.0.1:{free_port()}", "--admin-listen", "off"]
    argv = [*opts, "serve"] if where == "before" else ["serve", *opts]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", *argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:  # the banner's first line, on stdout (logs go to stderr)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert f"serving gRPC on 127.0.0.1:{port}" in line.decode()
    finally:
        proc.kill()
        await proc.wait()


async def test_a_second_sidecar_on_the_same_grpc_port_exits_2() -> None:
    """Observed: both listened (gRPC sets SO_REUSEPORT) and calls alternated between them."""
    async with SidecarProcess() as first:
        code, out = await _exit_of("--listen", first.address, "--emulator-listen", f"127.0.0.1:{free_port()}",
                                   "--admin-listen", "off")  # fmt: skip
        assert code == 2, out
        assert out.strip().splitlines()[-1] == (
            f"s2-sidecar: cannot listen on {first.address} (--listen / S2_SIDECAR_LISTEN): address already in use "
            "(another s2-sidecar?); stop it or choose another address"
        )
        assert "Traceback" not in out
        assert first.proc.returncode is None  # the first one is untouched


async def test_a_taken_admin_or_emulator_port_exits_2_without_a_traceback() -> None:
    """Observed for the admin port: the error plus "Unclosed client session" and "Event loop is
    closed" tracebacks. The check runs before anything starts, so nothing is left to close."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        grpc = ["--listen", f"127.0.0.1:{free_port()}"]
        outs = []
        code, out = await _exit_of(*grpc, "--admin-listen", busy, "--emulator-listen", f"127.0.0.1:{free_port()}")
        assert code == 2 and f"cannot listen on {busy} (--admin-listen / S2_SIDECAR_ADMIN_LISTEN)" in out, out
        outs.append(out)
        code, out = await _exit_of(*grpc, "--admin-listen", "off", "--emulator-listen", busy)
        assert code == 2 and f"cannot listen on {busy} (--emulator-listen / S2_SIDECAR_EMULATOR_LISTEN)" in out, out
        outs.append(out)
        code, out = await _exit_of("emulator", "--listen", busy)
        assert code == 2 and f"cannot listen on {busy} (emulator --listen)" in out, out
        outs.append(out)
        for text in outs:  # every case, the admin port's (where the tracebacks were seen) first
            assert "Traceback" not in text and "Unclosed" not in text, text


async def test_one_address_named_twice_is_an_error_not_a_hang() -> None:
    port = f"127.0.0.1:{free_port()}"
    code, out = await _exit_of(
        "--listen", port, "--admin-listen", port, "--emulator-listen", f"127.0.0.1:{free_port()}"
    )
    assert code == 2 and f"cannot listen on {port} (--admin-listen / S2_SIDECAR_ADMIN_LISTEN)" in out, out
    assert "Traceback" not in out and "Unclosed" not in out


async def test_a_unix_socket_another_sidecar_serves_is_not_taken_over(tmp_path: Path) -> None:
    """gRPC unlinks an existing socket file before binding: without the check a second sidecar
    silently stole the first one's socket."""
    sock = tmp_path / "s.sock"
    async with SidecarProcess("--listen", f"unix:{sock}"):
        code, out = await _exit_of("--listen", f"unix:{sock}", "--emulator-listen", f"127.0.0.1:{free_port()}",
                                   "--admin-listen", "off")  # fmt: skip
        assert code == 2, out
        assert (
            f"cannot listen on unix:{sock} (--listen / S2_SIDECAR_LISTEN): another process is serving this socket"
            in out
        )
        assert sock.exists()


async def test_a_stale_unix_socket_file_is_replaced(tmp_path: Path) -> None:
    sock = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock))  # bound, never listening, then closed: what a killed process leaves
    async with SidecarProcess("--listen", f"unix:{sock}") as sc:
        assert f"unix:{sock}" in sc.output


def test_a_number_that_is_not_one_says_so_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    err = run_cli([], {"S2_SIDECAR_HISTORY_CACHE_BYTES": "lots"}, capsys)
    assert "must be a whole number" in err and "invalid literal" not in err
    err = run_cli([], {"S2_SIDECAR_TAIL_MAX_STALENESS": "soon"}, capsys)
    assert "must be a number of seconds" in err and "could not convert" not in err


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_app_token_is_refused_not_taken_for_no_authentication(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Observed: S2_SIDECAR_APP_TOKEN= (an unfilled Secret) served every app without a token.
    err = run_cli([], {"S2_SIDECAR_APP_TOKEN": value}, capsys)
    assert err.startswith("s2-sidecar: invalid S2_SIDECAR_APP_TOKEN: it is set but empty"), err
    assert "set it to the token apps must send" in err and "or unset it" in err
