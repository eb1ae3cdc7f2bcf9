"""Server reflection as current tools use it (docs/api.md "Health and reflection"):
grpcurl, grpcui and Postman ask ``grpc.reflection.v1`` first, older tools
``grpc.reflection.v1alpha``; both answer, without credentials, and reveal only the
public services of protos/ (plus health and reflection themselves).

The requests are the upstream reflection messages; grpcio-reflection ships them as
``v1alpha``, and upstream's ``v1`` file has the same messages with the same field
numbers, so the same bytes are sent to both services. The calls are made from a plain
process (ops_grpc_driver.py), as a tool makes them."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as r

from okr.v1 import audit_pb2, directory_pb2, goal_pb2, progress_pb2, reporting_pb2, stream_pb2

DRIVER = str(Path(__file__).with_name("ops_grpc_driver.py"))
PUBLIC = {s.full_name for m in (goal_pb2, progress_pb2, reporting_pb2, audit_pb2, stream_pb2, directory_pb2)
          for s in m.DESCRIPTOR.services_by_name.values()}
VERSIONS = ["v1", "v1alpha"]


def drive(address: str, method: str, kind: str, requests: list[bytes], authorization: str | None = None):
    """(responses, status line) of a streaming call made by ops_grpc_driver.py."""
    done = subprocess.run([sys.executable, DRIVER, address, method, kind, "20", *filter(None, [authorization])],
                          input="\n".join(base64.b64encode(q).decode() for q in requests),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    status = next(line for line in lines if line.startswith("status "))
    return [base64.b64decode(line) for line in lines[:lines.index(status)] if line], status


def reflect(suite, version: str, *requests: r.ServerReflectionRequest,
            authorization: str | None = None) -> list[r.ServerReflectionResponse]:
    responses, status = drive(suite.gateway, f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                              "bidi", [q.SerializeToString() for q in requests], authorization)
    assert status == "status OK", status
    return [r.ServerReflectionResponse.FromString(b) for b in responses]


@pytest.mark.parametrize("version", VERSIONS)
def test_both_reflection_versions_list_the_public_services_without_credentials(suite, version):
    [answer] = reflect(suite, version, r.ServerReflectionRequest(list_services=""))
    listed = {s.name for s in answer.list_services_response.service}
    # the public okr.v1 services, health, the two reflection services: nothing else
    assert listed == PUBLIC | {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                               "grpc.reflection.v1alpha.ServerReflection"}


@pytest.mark.parametrize("version", VERSIONS)
def test_a_service_is_described_as_in_protos(suite, version):
    answers = reflect(suite, version, r.ServerReflectionRequest(file_containing_symbol="okr.v1.GoalService"),
                      r.ServerReflectionRequest(file_containing_symbol="okr.v1.NoSuchThing"))
    files = {f.name: f for f in (descriptor_pb2.FileDescriptorProto.FromString(b)
                                 for b in answers[0].file_descriptor_response.file_descriptor_proto)}
    expected = descriptor_pb2.FileDescriptorProto()
    goal_pb2.DESCRIPTOR.CopyToProto(expected)
    assert files["okr/v1/goal.proto"].service == expected.service
    assert files["okr/v1/goal.proto"].message_type == expected.message_type
    assert answers[1].error_response.error_code == 5  # NOT_FOUND: an unknown symbol


def test_the_v1_service_describes_itself_as_grpc_reflection_v1(suite):
    [answer] = reflect(suite, "v1", r.ServerReflectionRequest(
        file_containing_symbol="grpc.reflection.v1.ServerReflection"))
    [file] = [descriptor_pb2.FileDescriptorProto.FromString(b)
              for b in answer.file_descriptor_response.file_descriptor_proto]
    assert (file.name, file.package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")
    method = file.service[0].method[0]
    assert (method.name, method.input_type, method.output_type) == (
        "ServerReflectionInfo", ".grpc.reflection.v1.ServerReflectionRequest",
        ".grpc.reflection.v1.ServerReflectionResponse")


def test_reflection_ignores_credentials_even_a_wrong_one(suite):
    [answer] = reflect(suite, "v1", r.ServerReflectionRequest(list_services=""), authorization="ApiKey not-a-key")
    assert "okr.v1.GoalService" in {s.name for s in answer.list_services_response.service}
