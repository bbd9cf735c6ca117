"""Secrets stay secret; apps can be required to present a token."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.config import Config
from sidecar.emulator import Emulator, EmulatorConfig
from sidecar.testing import SidecarHarness, SidecarProcess, free_port

S2_TOKEN = "s2tok-7f3a9c1e-secret-do-not-log"
WRONG_TOKEN = "s2tok-wrong-0b1d2e-also-secret"
APP_TOKEN = "app-token-5e6f-secret"


async def test_app_token_is_required_when_configured() -> None:
    async with SidecarHarness(app_token=APP_TOKEN) as h:
        await h.append("s", [b"x"])
        for metadata in ((), (("authorization", "Bearer nope"),), (("authorization", APP_TOKEN),)):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await h.stub.Read(pb.ReadRequest(stream="s", seq_num=0), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert APP_TOKEN not in (info.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in h.stub.ReadSession(pb.ReadSessionRequest(stream="s", seq_num=0)):
                pass
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = await h.stub.Read(
            pb.ReadRequest(stream="s", seq_num=0), metadata=(("authorization", f"Bearer {APP_TOKEN}"),)
        )
        assert ok.records[0].body == b"x"
        health = await health_pb2_grpc.HealthStub(h.channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # probes need no token


async def test_the_bearer_scheme_is_case_insensitive() -> None:
    """RFC 9110 section 11.1: "It uses a case-insensitive token to identify the authentication
    scheme"; and 11.4: one or more spaces follow it. The token itself stays case-sensitive."""
    async with SidecarHarness(app_token=APP_TOKEN) as h:
        await h.append("s", [b"x"])
        for scheme in ("bearer", "BEARER", "BeArEr", "Bearer  "):
            ok = await h.stub.Read(
                pb.ReadRequest(stream="s", seq_num=0), metadata=(("authorization", f"{scheme} {APP_TOKEN}"),)
            )
            assert ok.records[0].body == b"x", scheme
        for value in (f"bearer {APP_TOKEN.upper()}", f"Basic {APP_TOKEN}", f"bearer{APP_TOKEN}", "bearer "):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await h.stub.Read(pb.ReadRequest(stream="s", seq_num=0), metadata=(("authorization", value),))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, value


def test_config_repr_hides_secrets() -> None:
    text = repr(Config(access_token=S2_TOKEN, app_token=APP_TOKEN))
    assert S2_TOKEN not in text and APP_TOKEN not in text


async def test_the_access_token_never_appears_in_output_or_errors() -> None:
    """A real sidecar process with debug logs reads from an emulator that checks the token; then
    one with a wrong token fails. Neither token appears anywhere the app or an operator can see."""
    port = free_port()
    emulator = Emulator(EmulatorConfig(port=port, require_token=S2_TOKEN))
    await emulator.start()
    seen: list[str] = []
    try:
        for token, expect_ok in ((S2_TOKEN, True), (WRONG_TOKEN, False)):
            env = {"S2_ACCESS_TOKEN": token, "S2_SIDECAR_APP_TOKEN": APP_TOKEN}
            args = ("--basin-endpoint", f"{emulator.url}/v1", "--default-basin", "secure-basin",
                    "--log-level", "debug", "--retry-attempts", "1")  # fmt: skip
            async with SidecarProcess(*args, env=env) as sc:
                async with grpc.aio.insecure_channel(sc.address) as channel:
                    stub = stream_pb2_grpc.StreamServiceStub(channel)
                    md = (("authorization", f"Bearer {APP_TOKEN}"),)
                    calls = [
                        stub.CheckTail(pb.CheckTailRequest(stream="missing"), metadata=md),
                        stub.Read(pb.ReadRequest(stream="missing", seq_num=0), metadata=md),
                    ]
                    for call in calls:
                        with pytest.raises(grpc.aio.AioRpcError) as info:
                            await call
                        err = info.value
                        expected = grpc.StatusCode.NOT_FOUND if expect_ok else grpc.StatusCode.UNAUTHENTICATED
                        assert err.code() == expected
                        seen += [err.details() or "", err.debug_error_string() or "", repr(err.trailing_metadata())]
                    session = stub.ReadSession(pb.ReadSessionRequest(stream="missing", seq_num=0), metadata=md)
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        async for _ in session:
                            pass
                    seen.append(info.value.details() or "")
                sc.terminate()
                await sc.wait()
                seen.append(sc.output)
        assert "debug" in " ".join(seen).lower() or "DEBUG" in " ".join(seen)  # debug logging really was on
        everything = "\n".join(seen)
        for secret in (S2_TOKEN, WRONG_TOKEN, APP_TOKEN):
            assert secret not in everything, f"a secret leaked: {secret[:6]}…"
    finally:
        await emulator.stop()


def test_help_does_not_offer_secrets_as_flags() -> None:
    import subprocess

    out = subprocess.run([sys.executable, "-m", "sidecar", "--help"], capture_output=True, text=True, check=True)
    assert "--access-token" not in out.stdout and "--app-token" not in out.stdout
    assert "S2_SIDECAR_APP_TOKEN" in out.stdout


async def test_wrong_token_is_unauthenticated_with_a_hint() -> None:
    emulator = Emulator(EmulatorConfig(port=0, require_token=S2_TOKEN))
    await emulator.start()
    try:
        async with SidecarHarness(basin_endpoint=f"{emulator.url}/v1", access_token=WRONG_TOKEN) as h:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await h.stub.CheckTail(pb.CheckTailRequest(stream="s"))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "S2_ACCESS_TOKEN" in (info.value.details() or "")
    finally:
        await emulator.stop()
    await asyncio.sleep(0)


async def test_encryption_keys_never_appear_in_output_or_errors(tmp_path: Path) -> None:
    """A real sidecar process with debug logs, the access log and spans printed reads encrypted
    streams with a key passed per call, one from its key files, a wrong one and a malformed one;
    none of them appears anywhere the app or an operator can see."""
    call_key, file_key, wrong_key = (base64.b64encode(bytes([n]) * 32).decode() for n in (7, 8, 9))
    malformed = base64.b64encode(b"sixteen-byte-key").decode()
    emulator = Emulator(EmulatorConfig(port=free_port()))
    await emulator.start()
    basin = "sealed-basin"
    (tmp_path / "streams.json").write_text(json.dumps({basin: {"from-files": file_key}}))
    seen: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{emulator.url}/v1/basins", json={"basin": basin, "config": {
                    "create_stream_on_append": True, "stream_cipher": "aegis-256"}}) as resp:  # fmt: skip
                assert resp.status == 201
            for stream, key in (("per-call", call_key), ("from-files", file_key)):
                async with http.post(
                    f"{emulator.url}/v1/streams/{stream}/records",
                    json={"records": [{"body": "hello"}]},
                    headers={"s2-basin": basin, "s2-encryption-key": key},
                ) as resp:
                    assert resp.status == 200
        env = {"S2_SIDECAR_ENCRYPTION_KEYS_DIR": str(tmp_path), "OTEL_TRACES_EXPORTER": "console"}
        args = ("--basin-endpoint", f"{emulator.url}/v1", "--default-basin", basin, "--log-level", "debug",
                "--access-log", "true", "--retry-attempts", "1")  # fmt: skip
        async with SidecarProcess(*args, env=env) as sc:
            async with grpc.aio.insecure_channel(sc.address) as channel:
                stub = stream_pb2_grpc.StreamServiceStub(channel)

                def key(value: str | None) -> tuple[tuple[str, str], ...]:
                    return () if value is None else (("s2-encryption-key", value),)

                for stream, value, expected in (
                    ("per-call", call_key, None),
                    ("from-files", None, None),
                    ("per-call", wrong_key, grpc.StatusCode.PERMISSION_DENIED),
                    ("from-files", wrong_key, grpc.StatusCode.PERMISSION_DENIED),
                    ("per-call", malformed, grpc.StatusCode.INVALID_ARGUMENT),
                ):
                    try:
                        msg = await stub.Read(pb.ReadRequest(stream=stream, seq_num=0), metadata=key(value))
                        assert expected is None and [r.body for r in msg.records] == [b"hello"]
                    except grpc.aio.AioRpcError as e:
                        assert e.code() == expected, e.details()
                        seen += [e.details() or "", e.debug_error_string() or "", repr(e.trailing_metadata())]
                    session = stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0), metadata=key(value))
                    try:
                        async for msg in session:
                            assert expected is None and [r.body for r in msg.records] == [b"hello"]
                            session.cancel()
                    except grpc.aio.AioRpcError as e:
                        assert e.code() == expected, e.details()
                        seen += [e.details() or "", repr(e.trailing_metadata())]
                    except asyncio.CancelledError:
                        pass
            sc.terminate()
            await sc.wait()
            seen.append(sc.output)
        everything = "\n".join(seen)
        assert "DEBUG" in everything.upper() and "trace_id" in everything  # debug logs and spans were printed
        assert "PERMISSION_DENIED" in everything or "decryption_failed" in everything
        for secret in (call_key, file_key, wrong_key, malformed):
            assert secret not in everything, f"a key leaked: {secret[:4]}…"
    finally:
        await emulator.stop()
