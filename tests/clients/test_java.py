"""The Java client (`clients/java`): built offline with Maven (its JUnit tests run in the build),
then its example CLI against a real sidecar (the shared scenarios) and its restart driver across
real sidecar restarts (tests/clients/restarts.py), and its first call waiting for a sidecar that
starts after it, and a call's own timeout replacing the client's.

Needs `clients/java/install-toolchain.sh` first (it fills the local Maven repository); skips,
saying why, only when java or mvn is missing."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.clients import cli_scenarios, restarts
from tests.clients.conftest import ROOT, Live

JAVA_DIR = ROOT / "clients" / "java"
TARGET = JAVA_DIR / "target"
PACKAGE = "dev.s2sidecar.client.example"
# Short-lived JVMs: C1 only starts faster, and these programs are never CPU-bound for long.
JVM_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]


@pytest.fixture(scope="module")
def classpath() -> str:
    """Builds the client with `mvn -o package` (compile, JUnit tests, jar, target/classpath.txt)."""
    for tool in ("java", "mvn"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed: the Java client needs Java 17+ and Maven", pytrace=False)
    shutil.rmtree(TARGET / "surefire-reports", ignore_errors=True)  # no stale reports for the check below
    result = subprocess.run(
        ["mvn", "-o", "-B", "-q", "package"], cwd=JAVA_DIR, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (
        "mvn -o package failed (run clients/java/install-toolchain.sh if dependencies are missing):\n"
        f"{result.stdout[-5000:]}\n{result.stderr[-3000:]}"
    )
    return f"{TARGET / 'classes'}:{(TARGET / 'classpath.txt').read_text().strip()}"


def jvm(classpath: str) -> list[str]:
    java_bin = shutil.which("java")
    assert java_bin is not None
    return [java_bin, *JVM_FLAGS, "-cp", classpath]


def java(classpath: str, main: str) -> list[str]:
    return [*jvm(classpath), f"{PACKAGE}.{main}"]


def test_java_unit_tests_ran_and_passed(classpath: str) -> None:
    """The build ran the JUnit tests (resume logic, errors, a scripted in-process service, a
    loopback server that starts late: calls wait for it, waitForReady names the target, and how
    headers and records print)."""
    reports = list((TARGET / "surefire-reports").glob("TEST-*.xml"))
    suites = [ET.parse(p).getroot() for p in reports]
    assert {s.get("name") for s in suites} >= {
        "dev.s2sidecar.client.RetryPolicyTest",
        "dev.s2sidecar.client.SessionStateTest",
        "dev.s2sidecar.client.SidecarExceptionTest",
        "dev.s2sidecar.client.ScriptedServiceTest",
        "dev.s2sidecar.client.WaitForReadyTest",
        "dev.s2sidecar.client.HeaderTest",
        "dev.s2sidecar.client.SequencedRecordTest",
    }
    assert sum(int(s.get("tests", "0")) for s in suites) >= 20
    assert all(s.get("failures") == "0" and s.get("errors") == "0" for s in suites)


@pytest.fixture
def cmd_for(classpath: str) -> Callable[[str], list[str]]:
    return lambda address: [*java(classpath, "Example"), "-addr", address]


@pytest.mark.parametrize("scenario", cli_scenarios.SCENARIOS, ids=lambda f: f.__name__)
async def test_java_example(
    scenario: Callable[[list[str], Live, str], Awaitable[None]],
    cmd_for: Callable[[str], list[str]],
    live: Live,
    stream: str,
) -> None:
    await scenario(cmd_for(live.address), live, stream)


async def test_java_example_over_a_unix_socket(cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await cli_scenarios.unix_socket(cmd_for, live, stream)


async def test_java_example_with_an_app_token(
    cmd_for: Callable[[str], list[str]], token_live: Live, stream: str
) -> None:
    await cli_scenarios.app_token(cmd_for, token_live, stream)


async def test_java_example_reads_an_encrypted_stream(
    cmd_for: Callable[[str], list[str]], live: Live, stream: str
) -> None:
    await cli_scenarios.encrypted_stream(cmd_for, live, stream)


@pytest.fixture
def driver(classpath: str) -> restarts.DriverCmd:
    return restarts.driver_cmd(*java(classpath, "RestartDriver"))


@pytest.mark.timeout(600)
async def test_java_catch_up_and_follow_across_sidecar_restarts(driver: restarts.DriverCmd) -> None:
    # 20,000 records (100,000 for the Python, Node and Go clients): CI's time; the loop is the same.
    # A 20 MB catch-up may end (its client buffers megabytes ahead) before the last stops: 2 must cut it
    # (3 for the longer ones); every stop cuts the follower.
    await restarts.catch_up_and_follow_across_restarts(driver, records=20_000, min_catch_up_cuts=2)


async def test_java_missing_stream_fails_at_once(driver: restarts.DriverCmd) -> None:
    await restarts.missing_stream_fails_at_once(driver)


async def test_java_session_keeps_its_key_across_sidecar_restarts(driver: restarts.DriverCmd) -> None:
    await restarts.encrypted_session_across_restarts(driver)


async def test_java_first_call_waits_for_a_sidecar_that_starts_later(cmd_for: Callable[[str], list[str]]) -> None:
    await cli_scenarios.first_call_waits_for_a_late_sidecar(cmd_for)


# Run by java's source launcher (one file, compiled in memory): a client with a 120 s timeout and
# retries off; a call's own 1 s must end each call first.
PER_CALL_TIMEOUT_APP = r"""
import dev.s2sidecar.client.*;
import java.time.Duration;
import java.util.Locale;
import java.util.function.Supplier;

public class PerCallTimeout {
  static String outcome(Supplier<?> call) {
    try {
      call.get();
      return "answered";
    } catch (SidecarException e) {
      return e.getClass().getSimpleName();
    }
  }

  public static void main(String[] args) {
    var second = Duration.ofSeconds(1);
    try (var client = S2SidecarClient.builder().target(args[0]).timeout(Duration.ofSeconds(120)).resume(false).build()) {
      String tail = outcome(() -> client.checkTail(args[1], CheckTailOptions.DEFAULT.timeout(second)));
      long started = System.nanoTime();
      String read = outcome(() -> client.read(args[1], ReadOptions.from(ReadStart.seqNum(0)).waitSeconds(1).timeout(second)));
      double readSeconds = (System.nanoTime() - started) / 1e9;
      System.out.printf(Locale.ROOT, "{\"results\": [\"%s\", \"%s\"], \"read_seconds\": %.3f}%n", tail, read, readSeconds);
    }
  }
}
"""


async def test_java_per_call_timeout_replaces_the_clients(classpath: str, tmp_path: Path) -> None:
    """A call's timeout (`CheckTailOptions.timeout`, `ReadOptions.timeout`) replaces the client's
    (120 s here) for that call, with the same meaning: against an address where no sidecar
    answers, `checkTail` with 1 s and `read` with `waitSeconds(1)` and 1 s each end
    `DeadlineExceeded` (calls wait for a sidecar that has not answered yet, within their deadline),
    long before the client's timeout, the read after at least 2 s (the wait on top); this test
    gives them 60 s."""
    app = tmp_path / "PerCallTimeout.java"
    app.write_text(PER_CALL_TIMEOUT_APP)
    argv = [*jvm(classpath), str(app), f"unix:{tmp_path}/nobody.sock", "s"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("a call's timeout did not replace the client's") from None
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["results"] == ["DeadlineExceeded", "DeadlineExceeded"], result
    assert result["read_seconds"] >= 2, result  # 1 s plus the 1 s wait: the wait comes on top
