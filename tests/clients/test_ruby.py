"""The Ruby client (`clients/ruby`): its minitest tests (retry rules, session positions and error
decoding; the client over loopback gRPC against a scripted in-process server), the example CLI
against a real sidecar (the shared cli_scenarios), the auto-resume driver across real sidecar
restarts (tests/clients/restarts.py), and the first call of an app started before its sidecar
waiting for it. Needs Debian's Ruby gRPC (`clients/ruby/install-toolchain.sh`); skips, saying so,
without it."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from tests.clients import cli_scenarios, restarts
from tests.clients.conftest import ROOT, Live

RUBY_DIR = ROOT / "clients" / "ruby"


@pytest.fixture(scope="module")
def ruby() -> str:
    path = shutil.which("ruby")
    if path is None:
        pytest.fail("ruby is not installed: run clients/ruby/install-toolchain.sh", pytrace=False)
    probe = subprocess.run(
        [path, "-e", 'require "grpc"; require "google/protobuf"'], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        pytest.fail(
            f"Ruby's grpc gems are missing (run clients/ruby/install-toolchain.sh): {probe.stderr.strip()}",
            pytrace=False,
        )
    return path


@pytest.fixture
def cmd_for(ruby: str) -> Callable[[str], list[str]]:
    return lambda address: [ruby, str(RUBY_DIR / "example.rb"), "-addr", address]


@pytest.fixture
def driver(ruby: str) -> restarts.DriverCmd:
    return restarts.driver_cmd(ruby, str(RUBY_DIR / "restart-reader.rb"))


def test_ruby_unit_tests(ruby: str) -> None:
    """`rake test`: clients/ruby/test/*_test.rb (minitest; the fakes run in-process)."""
    rake = shutil.which("rake")
    assert rake is not None, "rake comes with Debian's ruby package"
    result = subprocess.run([rake, "test"], cwd=RUBY_DIR, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"rake test failed:\n{result.stdout}\n{result.stderr}"
    assert " 0 failures, 0 errors" in result.stdout, result.stdout


@pytest.mark.parametrize("scenario", cli_scenarios.SCENARIOS, ids=lambda f: f.__name__)
async def test_ruby_example(
    scenario: Callable[[Sequence[str], Live, str], Awaitable[None]],
    cmd_for: Callable[[str], list[str]],
    live: Live,
    stream: str,
) -> None:
    await scenario(cmd_for(live.address), live, stream)


async def test_ruby_example_over_a_unix_socket(cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await cli_scenarios.unix_socket(cmd_for, live, stream)


async def test_ruby_example_with_an_app_token(
    cmd_for: Callable[[str], list[str]], token_live: Live, stream: str
) -> None:
    await cli_scenarios.app_token(cmd_for, token_live, stream)


async def test_ruby_example_reads_an_encrypted_stream(
    cmd_for: Callable[[str], list[str]], live: Live, stream: str
) -> None:
    await cli_scenarios.encrypted_stream(cmd_for, live, stream)


@pytest.mark.timeout(600)
async def test_ruby_catch_up_and_follow_across_sidecar_restarts(driver: restarts.DriverCmd) -> None:
    # 20,000 records (not 100,000 as for the Python, Node and Go clients): CI's time, and Ruby's
    # resume is the same loop at any length.
    # A 20 MB catch-up may end (its client buffers megabytes ahead) before the last stops: 2 must cut it
    # (3 for the longer ones); every stop cuts the follower.
    await restarts.catch_up_and_follow_across_restarts(driver, records=20_000, min_catch_up_cuts=2)


async def test_ruby_missing_stream_fails_at_once(driver: restarts.DriverCmd) -> None:
    await restarts.missing_stream_fails_at_once(driver)


async def test_ruby_session_keeps_its_key_across_sidecar_restarts(driver: restarts.DriverCmd) -> None:
    await restarts.encrypted_session_across_restarts(driver)


async def test_ruby_first_call_waits_for_a_sidecar_that_starts_later(cmd_for: Callable[[str], list[str]]) -> None:
    await cli_scenarios.first_call_waits_for_a_late_sidecar(cmd_for)


COMMANDS_APP = """
require "json"
require "s2sidecar"
client = S2Sidecar::Client.new(ARGV[0], basin: "local-basin")
read = client.read(ARGV[1], seq_num: 0, ignore_command_records: true).records.map(&:seq_num)
session = client.read_session(ARGV[1], seq_num: 0, heartbeats: true, ignore_command_records: true)
before = session.caught_up?
seen = []
session.each do |b|
  seen.concat(b.records.map(&:seq_num))
  break if b.caught_up
end
puts JSON.generate(read: read, seen: seen, before: before, after: session.caught_up?)
client.close
"""


async def test_ruby_leaves_command_records_out_and_says_when_caught_up(ruby: str, live: Live, stream: str) -> None:
    """Through a real sidecar: a fence between two records is left out of a read and a session,
    which is not caught up at the start and is once it reached the tail."""
    await live.append(stream, [{"body": "a"}, {"body": "fence", "headers": [["", "fence"]]}, {"body": "b"}])
    argv = [ruby, "-I", str(RUBY_DIR / "lib"), "-e", COMMANDS_APP, live.address, stream]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out) == {"read": [0, 2], "seen": [0, 2], "before": False, "after": True}


PER_CALL_TIMEOUT_APP = """
require "json"
require "s2sidecar"
client = S2Sidecar::Client.new(ARGV[0], timeout: 120, retry_policy: S2Sidecar::RetryPolicy::NONE)
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
results = [[:check_tail, {timeout: 1}], [:read, {seq_num: 0, wait: 1, timeout: 1}]].map do |name, kw|
  begin
    client.public_send(name, ARGV[1], **kw)
    "answered"
  rescue S2Sidecar::Error => e
    e.class.name
  end
end
puts JSON.generate({results: results, seconds: Process.clock_gettime(Process::CLOCK_MONOTONIC) - started})
client.close
"""


async def test_ruby_per_call_timeout_replaces_the_clients(ruby: str, tmp_path: Path) -> None:
    """A call's `timeout:` replaces the client's (120 s here) for that call, with the same meaning:
    against an address where no sidecar answers, `check_tail(timeout: 1)` and `read(wait: 1,
    timeout: 1)` each end `DeadlineExceeded` (calls wait for a sidecar that has not answered yet,
    within their deadline), long before the client's timeout; this test gives them 60 s."""
    argv = [ruby, "-I", str(RUBY_DIR / "lib"), "-e", PER_CALL_TIMEOUT_APP, f"unix:{tmp_path}/nobody.sock", "s"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        raise AssertionError("a call's timeout: did not replace the client's") from None
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["results"] == ["S2Sidecar::DeadlineExceeded", "S2Sidecar::DeadlineExceeded"], result
    assert result["seconds"] >= 3, result  # 1 s, then 1 s plus the 1 s wait: the wait comes on top
