"""Server reflection that keeps the proto's comments, so `grpcurl describe` documents the API.

Python's generated descriptors drop comments (source info). `tools/genproto.py` also writes a
descriptor set with source info next to the stubs; this servicer answers with those richer
file descriptors for our own files and defers to grpcio-reflection for everything else.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

from sidecar.api.registration import generic_only

DESCRIPTOR_SET = ("sidecar._proto", "descriptor_set.binpb")


def _documented_files() -> dict[str, bytes]:
    """File name → serialized FileDescriptorProto with comments, from the generated set."""
    try:
        raw = resources.files(DESCRIPTOR_SET[0]).joinpath(DESCRIPTOR_SET[1]).read_bytes()
    except FileNotFoundError:
        return {}
    files = descriptor_pb2.FileDescriptorSet.FromString(raw).file
    return {f.name: f.SerializeToString() for f in files}


class DocumentedReflectionServicer(ReflectionServicer):  # type: ignore[misc]
    def __init__(self, service_names: list[str]) -> None:
        super().__init__(service_names)
        self._documented = _documented_files()

    def _with_docs(self, response: Any) -> Any:
        protos = response.file_descriptor_response.file_descriptor_proto
        for i, data in enumerate(protos):
            name = descriptor_pb2.FileDescriptorProto.FromString(data).name
            if name in self._documented:
                protos[i] = self._documented[name]
        return response

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        return self._with_docs(super()._file_by_filename(request, filename))

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        return self._with_docs(super()._file_containing_symbol(request, fully_qualified_name))


def enable(server: grpc.aio.Server, service_names: list[str]) -> None:
    names = [*service_names, reflection.SERVICE_NAME]
    # Generic only: a pre-registered method costs every call the server accepts (registration.py).
    servicer = DocumentedReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, generic_only(server))


__all__ = ["enable", "reflection_pb2"]
