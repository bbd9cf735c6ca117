"""The Node.js client (`clients/node`): its `node --test` unit tests (resume logic, the session
loop and waiting for the sidecar against a scripted in-process fake server), the example CLI
against a real sidecar, and the auto-resume driver across real sidecar restarts
(tests/clients/restarts.py). The npm package: versioned with the sidecar, its TypeScript types
checked by `tsc`, `npm pack` installed in a clean folder and used there against a real sidecar;
and the first call waiting for a sidecar that starts later. Installs the locked dependencies once
(`npm ci` into clients/node/node_modules, gitignored); skips if node/npm are missing."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tarfile
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.testing import SidecarProcess, free_port
from tests.clients import cli_scenarios, restarts
from tests.clients.conftest import ROOT, Live

NODE_DIR = ROOT / "clients" / "node"


@pytest.fixture(scope="module")
def node_ready() -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.fail("node and npm are needed for the Node.js client (scripts/install-test-tools)", pytrace=False)
    lock = NODE_DIR / "package-lock.json"
    stamp = NODE_DIR / "node_modules" / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture
def node(node_ready: None) -> str:
    path = shutil.which("node")
    assert path is not None
    return path


@pytest.fixture
def cmd_for(node: str) -> Callable[[str], list[str]]:
    return lambda address: [node, str(NODE_DIR / "example.js"), "-addr", address]


@pytest.fixture
def driver(node: str) -> restarts.DriverCmd:
    return restarts.driver_cmd(node, str(NODE_DIR / "restart-reader.js"))


def test_node_unit_tests(node: str) -> None:
    """`node --test`: clients/node/test/*.test.js (no sidecar: the fakes run in-process)."""
    result = subprocess.run([node, "--test"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"node --test failed:\n{result.stdout}\n{result.stderr}"
    assert re.search(r"^# pass [1-9]", result.stdout, re.M), result.stdout  # it found the tests


@pytest.mark.parametrize("scenario", cli_scenarios.SCENARIOS, ids=lambda f: f.__name__)
async def test_node_example(scenario, cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await scenario(cmd_for(live.address), live, stream)


async def test_node_example_over_a_unix_socket(cmd_for: Callable[[str], list[str]], live: Live, stream: str) -> None:
    await cli_scenarios.unix_socket(cmd_for, live, stream)


async def test_node_example_reads_an_encrypted_stream(
    cmd_for: Callable[[str], list[str]], live: Live, stream: str
) -> None:
    await cli_scenarios.encrypted_stream(cmd_for, live, stream)


async def test_node_example_with_an_app_token(
    cmd_for: Callable[[str], list[str]], token_live: Live, stream: str
) -> None:
    await cli_scenarios.app_token(cmd_for, token_live, stream)


@pytest.mark.timeout(600)
async def test_node_catch_up_and_follow_across_sidecar_restarts(driver: restarts.DriverCmd) -> None:
    await restarts.catch_up_and_follow_across_restarts(driver)


async def test_node_missing_stream_fails_at_once(driver: restarts.DriverCmd) -> None:
    await restarts.missing_stream_fails_at_once(driver)


async def test_node_session_keeps_its_key_across_sidecar_restarts(driver: restarts.DriverCmd) -> None:
    await restarts.encrypted_session_across_restarts(driver)


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "S2SIDECAR_PROTO"}  # the package finds its own
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_node_package_is_versioned_with_the_sidecar() -> None:
    sidecar = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    package = json.loads((NODE_DIR / "package.json").read_text())
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert package["version"] == sidecar
    assert (package["name"], package.get("private")) == ("@s2-sidecar/client", None)
    assert lock["version"] == sidecar and lock["packages"][""]["version"] == sidecar  # the lock is current
    assert lock["name"] == package["name"]


def test_node_types_check(node_ready: None) -> None:
    """`npm run typecheck`: tsc (strict) on src/client.d.ts and test/types.test-d.ts, which imports
    '@s2-sidecar/client' through the package's `exports` and holds `@ts-expect-error` lines."""
    result = _run(["npm", "run", "--silent", "typecheck"], NODE_DIR)
    assert result.returncode == 0, f"tsc failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def tarball(node_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("npm-pack")
    result = _run(["npm", "pack", "--json", "--pack-destination", str(out)], NODE_DIR)
    assert result.returncode == 0, f"npm pack failed:\n{result.stdout}\n{result.stderr}"
    (packed,) = json.loads(result.stdout)
    return out / packed["filename"]


def test_node_tarball_holds_what_users_need_only(tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        names = sorted(n.removeprefix("package/") for n in tar.getnames())
    assert {"package.json", "README.md", "src/client.js", "src/client.d.ts", "src/resume.js"} <= set(names)
    assert "proto/s2sidecar/v1/stream.proto" in names  # loaded at run time: the package ships its copy
    assert not [n for n in names if "node_modules" in n or n.startswith(("test/", "tests/")) or ".test" in n], names
    assert not [n for n in names if n in ("example.js", "restart-reader.js", "tsconfig.json", "package-lock.json")]


CJS_APP = """
const client = require('@s2-sidecar/client');
const { S2SidecarClient, StreamNotFound } = client;
const [address, stream] = process.argv.slice(2);
async function main() {
  const c = new S2SidecarClient(address, { timeoutMs: 10000 });
  await c.waitForReady(10000);
  const batch = await c.read(stream, { seqNum: 0, count: 3 });
  try { await c.checkTail(stream + '-missing'); } catch (e) { console.log(e instanceof StreamNotFound, e.code); }
  c.close();
  console.log(require('@s2-sidecar/client/package.json').version, require.resolve('@s2-sidecar/client'));
  console.log(JSON.stringify(batch.records.map((r) => [r.seq_num, r.body.toString()])));
}
main().catch((e) => { console.error(e); process.exit(1); });
"""

ESM_APP = "import { S2SidecarClient, SidecarError } from '@s2-sidecar/client'; console.log(typeof S2SidecarClient, typeof SidecarError);"

TS_APP = """
import { S2SidecarClient, type ReadBatch } from '@s2-sidecar/client';
export async function first(stream: string): Promise<string[]> {
  const client = new S2SidecarClient();
  await client.waitForReady(1000);
  const batch: ReadBatch = await client.read(stream, { seqNum: 0, count: 3 });
  // @ts-expect-error seq_num is a string
  const n: number = batch.records[0].seq_num;
  return [String(n), ...batch.records.map((r) => r.body.toString())];
}
"""


@pytest.mark.timeout(600)
async def test_node_packed_package_installs_in_a_clean_folder_and_reads(
    tarball: Path, tmp_path: Path, live: Live, stream: str
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "app", "version": "1.0.0", "private": True}))
    install = ["npm", "install", "--no-audit", "--no-fund", "--prefer-offline", str(tarball)]
    result = await asyncio.to_thread(_run, install, app)
    assert result.returncode == 0, f"npm install failed:\n{result.stdout}\n{result.stderr}"
    await live.fill(stream)
    (app / "app.js").write_text(CJS_APP)
    result = await asyncio.to_thread(_run, ["node", "app.js", live.address, stream], app, 60)
    assert result.returncode == 0, result.stderr
    version = json.loads((NODE_DIR / "package.json").read_text())["version"]
    installed = app / "node_modules" / "@s2-sidecar" / "client" / "src" / "client.js"
    assert result.stdout.splitlines() == [
        "true NOT_FOUND",
        f"{version} {installed}",  # the installed copy, not the repository's
        '[["0","record-0"],["1","record-1"],["2","record-2"]]',
    ]
    # ES modules get the named exports too
    result = await asyncio.to_thread(_run, ["node", "--input-type=module", "-e", ESM_APP], app, 60)
    assert (result.returncode, result.stdout.strip()) == (0, "function function"), result.stderr
    # TypeScript resolves the packed types through `exports` (the repository's tsc, the app's node_modules)
    (app / "app.ts").write_text(TS_APP)
    tsconfig = {"compilerOptions": {"strict": True, "noEmit": True, "module": "nodenext", "target": "es2022"}}
    (app / "tsconfig.json").write_text(json.dumps(tsconfig))
    result = await asyncio.to_thread(_run, [str(NODE_DIR / "node_modules" / ".bin" / "tsc"), "-p", "."], app)
    assert result.returncode == 0, f"tsc in the app failed:\n{result.stdout}\n{result.stderr}"


WAITING_APP = """
const { S2SidecarClient } = require(process.argv[1]);
const client = new S2SidecarClient(process.argv[2], { retry: { maxAttempts: 1 }, timeoutMs: 30000 });
client.checkTail('no-such-stream').then(
  (tail) => console.log('tail', JSON.stringify(tail)),
  (err) => console.log(err.constructor.name, err.code, err.message),
).finally(() => client.close());
"""


async def test_node_first_call_waits_for_a_sidecar_that_starts_later(node: str) -> None:
    """An app that starts before its sidecar: with retries off, only gRPC's waitForReady (on until
    the sidecar first answers) can make the call reach a sidecar that starts a second later."""
    port = free_port()
    argv = [node, "-e", WAITING_APP, str(NODE_DIR / "src" / "client.js"), f"127.0.0.1:{port}"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.sleep(1.0)
        async with SidecarProcess(grpc_port=port):
            out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert out.decode().startswith("StreamNotFound NOT_FOUND "), out.decode() + err.decode()  # answered


async def test_node_wait_for_ready_times_out_saying_where(node: str) -> None:
    port = free_port()
    script = (
        f"const {{ S2SidecarClient }} = require({json.dumps(str(NODE_DIR / 'src' / 'client.js'))});"
        f"const c = new S2SidecarClient('127.0.0.1:{port}');"
        "c.waitForReady(300).then(() => console.log('ready'), (e) => console.log(e.message)).finally(() => c.close());"
    )
    result = await asyncio.to_thread(_run, [node, "-e", script], NODE_DIR, 60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"s2-sidecar at 127.0.0.1:{port} is not ready after 300 ms"), result.stdout


COMMANDS_APP = """
const { S2SidecarClient } = require(process.argv[1]);
const client = new S2SidecarClient(process.argv[2], { basin: 'local-basin' });
(async () => {
  const batch = await client.read(process.argv[3], { seqNum: 0, ignoreCommandRecords: true });
  const read = batch.records.map((r) => Number(r.seq_num));
  const session = client.readSession(process.argv[3], { seqNum: 0, heartbeats: true, ignoreCommandRecords: true });
  const before = session.caughtUp();
  const seen = [];
  for await (const b of session) {
    seen.push(...b.records.map((r) => Number(r.seq_num)));
    if (b.caught_up) break;
  }
  console.log(JSON.stringify({ read, seen, before, after: session.caughtUp() }));
})().finally(() => client.close());
"""


async def test_node_leaves_command_records_out_and_says_when_caught_up(node: str, live: Live, stream: str) -> None:
    """Through a real sidecar: a fence between two records is left out of a read and a session,
    which is not caught up at the start and is once it reached the tail."""
    await live.append(stream, [{"body": "a"}, {"body": "fence", "headers": [["", "fence"]]}, {"body": "b"}])
    argv = [node, "-e", COMMANDS_APP, str(NODE_DIR / "src" / "client.js"), live.address, stream]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out) == {"read": [0, 2], "seen": [0, 2], "before": False, "after": True}
