"""The restart test's driver (clients/RESUME.md): one auto-resuming ReadSession, one line per record.

    restart_reader.py --addr ADDR --stream STREAM --start-seq-num N [--count N] [--encryption-key KEY] [--sync]

Writes `<seq_num> <body>` per record to stdout (flushed after every batch) and exits 0 when the
session ends; on a failure the client does not retry, writes `error <STATUS>: <message>` to
stderr and exits 1. Resumes are logged to stderr. `--sync` reads with S2SidecarSyncClient.
`--encryption-key` (base64) is given to the client as its 32 raw bytes."""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # runnable from a checkout

from s2sidecar_client import ReadBatch, ReadLimit, S2SidecarClient, S2SidecarSyncClient, SeqNum, SidecarError


def emit(batch: ReadBatch) -> None:
    sys.stdout.write("".join(f"{r.seq_num} {r.body.decode()}\n" for r in batch.records))
    sys.stdout.flush()


def key(args: argparse.Namespace) -> bytes | None:
    return None if args.encryption_key is None else base64.b64decode(args.encryption_key)


async def read_async(args: argparse.Namespace) -> None:
    async with (
        S2SidecarClient(args.addr, encryption_key=key(args)) as client,
        client.read_session(args.stream, start=SeqNum(args.start_seq_num), limit=ReadLimit(count=args.count)) as s,
    ):
        async for batch in s:
            emit(batch)


def read_sync(args: argparse.Namespace) -> None:
    with S2SidecarSyncClient(args.addr, encryption_key=key(args)) as client:
        batches: Iterable[ReadBatch] = client.read_session(
            args.stream, start=SeqNum(args.start_seq_num), limit=ReadLimit(count=args.count)
        )
        for batch in batches:
            emit(batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addr", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--start-seq-num", type=int, required=True)
    parser.add_argument("--count", type=int, help="stop after this many records (default: follow for ever)")
    parser.add_argument("--encryption-key", help="the key of an encrypted stream (base64 of 32 bytes)")
    parser.add_argument("--sync", action="store_true", help="use the blocking client")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="restart_reader: %(message)s")
    try:
        if args.sync:
            read_sync(args)
        else:
            asyncio.run(read_async(args))
    except SidecarError as e:
        print(f"error {e.code.name}: {e.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
