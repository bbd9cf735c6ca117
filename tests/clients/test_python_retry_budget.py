"""The Python client does not multiply the sidecar's retries: a real sidecar process against an
upstream port where nothing listens, and against a host name that does not exist. The sidecar's
access log counts the client's calls (one line per call), its WARNING lines the give-ups. With
the client retrying what the sidecar already retried, one `check_tail` was up to 60 calls of 11
upstream attempts each."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from s2sidecar_client import Conflict, RetryPolicy, S2SidecarClient, S2SidecarSyncClient, Unavailable
from s2sidecar_client.errors import STATUS_DETAILS_KEY, from_status, is_retryable

from sidecar.testing import SidecarProcess, free_port

BASIN = "my-basin-01"
SIDECAR_ATTEMPTS = "--retry-attempts", "3", "--retry-base-delay", "0.01", "--access-log", "true"
# Fast enough to retry many times within the calls' timeouts, were it to retry.
CLIENT_RETRY = RetryPolicy(max_attempts=60, min_backoff=0.01, max_backoff=0.02)


def _calls(output: str, method: str) -> int:
    return sum(1 for line in output.splitlines() if f" {method} " in line and "sidecar.access" in line)


def _gave_up(output: str) -> list[str]:
    return [line for line in output.splitlines() if "WARNING" in line and "giving up after" in line]


async def test_an_unreachable_upstream_is_one_call_and_one_give_up() -> None:
    port = free_port()  # nothing listens there
    async with SidecarProcess("--basin-endpoint", f"http://127.0.0.1:{port}/v1", *SIDECAR_ATTEMPTS) as sc:
        async with S2SidecarClient(sc.address, basin=BASIN, timeout=30, retry=CLIENT_RETRY) as client:
            with pytest.raises(Unavailable) as info:
                await client.check_tail("s", max_staleness_ms=0)
        err = info.value
        assert err.metadata["attempts"] == "4" and not err.retryable and err.retry_after == 1.0
        assert "connection refused" in err.message and "tried 4 times" in err.message

        def sync_read() -> None:
            with S2SidecarSyncClient(sc.address, basin=BASIN, timeout=30, retry=CLIENT_RETRY) as sync:
                with pytest.raises(Unavailable):
                    sync.read("s")

        await asyncio.to_thread(sync_read)
        await asyncio.sleep(0.3)  # the access log line follows the status
    assert _calls(sc.output, "CheckTail") == 1, sc.output
    assert _calls(sc.output, "Read") == 1, sc.output
    gave_up = _gave_up(sc.output)
    assert len(gave_up) == 2 and all("after 4 attempts" in line for line in gave_up), gave_up


async def test_a_host_that_does_not_exist_is_one_call_and_no_retry() -> None:
    endpoint = "http://nonexistent.invalid:8080/v1"  # .invalid never resolves (RFC 6761)
    async with SidecarProcess("--basin-endpoint", endpoint, *SIDECAR_ATTEMPTS) as sc:
        async with S2SidecarClient(sc.address, basin=BASIN, timeout=30, retry=CLIENT_RETRY) as client:
            with pytest.raises(Conflict) as info:  # FAILED_PRECONDITION
                await client.check_tail("s", max_staleness_ms=0)
        await asyncio.sleep(0.3)
    err = info.value
    assert err.reason == "upstream_host_not_found" and not err.retryable
    assert "cannot resolve nonexistent.invalid: no such host" in err.message
    assert _calls(sc.output, "CheckTail") == 1, sc.output
    assert not _gave_up(sc.output) and "; retry 1 in" not in sc.output


@pytest.mark.parametrize(
    ("code", "metadata", "retried"),
    [
        (grpc.StatusCode.UNAVAILABLE, {}, True),
        (grpc.StatusCode.UNAVAILABLE, {"attempts": "11"}, False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, {}, True),  # with RetryInfo
        (grpc.StatusCode.RESOURCE_EXHAUSTED, {"attempts": "11"}, False),
    ],
)
def test_a_status_is_retried_unless_the_sidecar_already_retried_it(
    code: grpc.StatusCode, metadata: dict[str, str], retried: bool
) -> None:
    details = [any_pb2.Any(), any_pb2.Any()]
    details[0].Pack(error_details_pb2.ErrorInfo(reason="x", domain="s2.dev", metadata=metadata))
    details[1].Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1)))
    status = status_pb2.Status(code=code.value[0], message="failed", details=details)
    err = from_status(code, "failed", [(STATUS_DETAILS_KEY, status.SerializeToString())])
    assert err.retry_after == 1.0
    assert is_retryable(err) is retried
