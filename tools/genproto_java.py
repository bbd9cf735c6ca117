"""The Java client's stubs (`proto/s2sidecar/` only) in `clients/java/src/generated/java/`:
protoc's `--java_out` and the grpc-java plugin's `--grpc-java_out`.

grpcio-tools' protoc carries only the Python generators, so this target runs protoc itself, at the
version whose gencode matches the protobuf-java runtime in `clients/java/pom.xml`, plus the
grpc-java plugin: `clients/java/install-toolchain.sh` fetches both from Maven Central into
`.tools/bin` under versioned names, so the output depends on those pinned versions only."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gentarget import PROTO_DIR, ROOT, MissingTool, protos

OUT_DIR = ROOT / "clients" / "java" / "src" / "generated" / "java"
# Keep in step with clients/java/install-toolchain.sh and pom.xml (protobuf.version).
PROTOC_VERSION = "4.36.2"
GRPC_JAVA_PLUGIN_VERSION = "1.83.1"

_BIN = ROOT / ".tools" / "bin"


def _tool(name: str) -> Path:
    path = _BIN / name
    if not path.is_file():
        raise MissingTool(
            f"{name} is not installed (needed for the Java stubs in {OUT_DIR.relative_to(ROOT)}): "
            "run clients/java/install-toolchain.sh"
        )
    return path


def generate(into: Path) -> None:
    protoc = _tool(f"protoc-{PROTOC_VERSION}")
    plugin = _tool(f"protoc-gen-grpc-java-{GRPC_JAVA_PLUGIN_VERSION}")
    result = subprocess.run(
        [
            protoc,
            f"-I{PROTO_DIR}",
            f"--plugin=protoc-gen-grpc-java={plugin}",
            f"--java_out={into}",
            f"--grpc-java_out={into}",
            *protos("s2sidecar"),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"protoc failed:\n{result.stderr}")
