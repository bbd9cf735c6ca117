"""A driver (clients/RESUME.md) that does NOT resume: one plain ReadSession with the generated
stubs. tests/clients/test_restarts.py runs the restart test with it to show the test catches a
client that loses its place."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--start-seq-num", type=int, required=True)
    parser.add_argument("--count", type=int)
    args = parser.parse_args()
    stub = stream_pb2_grpc.StreamServiceStub(grpc.insecure_channel(args.addr))  # type: ignore[no-untyped-call]
    req = pb.ReadSessionRequest(stream=args.stream, seq_num=args.start_seq_num, count=args.count)
    try:
        for resp in stub.ReadSession(req):
            sys.stdout.writelines(f"{r.seq_num} {r.body.decode()}\n" for r in resp.records)
            sys.stdout.flush()
    except grpc.RpcError as e:
        print(f"error {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
