"""Server reflection through stock clients, against the real stb-echo-server, catalogd and
rulesd.

grpcio-reflection's `ProtoReflectionDescriptorDatabase` (which speaks
grpc.reflection.v1alpha), with a `DescriptorPool` over it, must find every service a
server lists and resolve every method's input and output message types, field by field
as grpc_tools compiles Protos/. Raw requests on grpc.reflection.v1 check the error
responses; malformed and truncated requests must leave the server running.

Fixtures (conftest.py): `echo_server`, `catalog_server`, `rules_server` (which reads this
module's catalogd; nothing here writes to the catalog), `stubs`, `control_call`.
"""

from __future__ import annotations

import os
import struct

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from test_hardening import RawH2, grpc_message, headers_frame, data_frames, request_headers

TIMEOUT = 30
HEALTH = "grpc.health.v1.Health"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
INFO_V1 = f"/{REFLECTION_V1}/ServerReflectionInfo"
INFO_V1ALPHA = f"/{REFLECTION_V1ALPHA}/ServerReflectionInfo"
NOT_FOUND, UNIMPLEMENTED = 5, 12

# The services each server must list, and the module of `stubs` that compiles the
# server's own service.
SERVERS = {
    "echo": ("stb.testing.v1.Echo", "pb2"),
    "catalog": ("stb.catalog.v1.Catalog", "catalog_pb2"),
    "rules": ("stb.rules.v1.Rules", "rules_pb2"),
}
NEEDS = {"catalog": ("STB_CATALOGD_BIN",), "rules": ("STB_CATALOGD_BIN", "STB_RULESD_BIN")}


@pytest.fixture(params=sorted(SERVERS))
def server(request):
    """(name, a running server) for each of echo, catalog and rules."""
    missing = [var for var in NEEDS.get(request.param, ()) if not os.environ.get(var)]
    if missing:
        pytest.skip(f"{', '.join(missing)} must be set for the {request.param} server")
    return request.param, request.getfixturevalue(f"{request.param}_server")


def port_of(server) -> int:
    address = getattr(server, "addr", None) or server.address
    return int(address.rsplit(":", 1)[1])


def field_shape(message) -> list[tuple]:
    """What a client needs to encode a message: each field's name, number, type, label,
    message or enum type, and presence (proto3 `optional`)."""
    shape = []
    for f in message.fields:
        kind = f.message_type.full_name if f.message_type else f.enum_type.full_name if f.enum_type else ""
        shape.append((f.name, f.number, f.type, f.is_repeated, kind, f.has_presence,
                      f.containing_oneof.name if f.containing_oneof else None))
    return shape


def reflect(channel, path: str, requests) -> list:
    """Sends reflection requests (v1alpha messages; v1 is the same on the wire) on one
    stream to `path`; returns the responses."""
    call = channel.stream_stream(path, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    return list(call(iter(requests), timeout=TIMEOUT))


def assert_alive(server):
    assert server.alive(), f"the server died\n{server.log_tail()}"
    with server.channel() as channel:
        [answer] = reflect(channel, INFO_V1, [reflection_pb2.ServerReflectionRequest(list_services="")])
    assert answer.WhichOneof("message_response") == "list_services_response"


def test_descriptor_database_finds_every_service_and_message(server, stubs):
    name, process = server
    own_service, module = SERVERS[name]
    compiled = getattr(stubs, module).DESCRIPTOR.services_by_name[own_service.rsplit(".", 1)[1]]
    with process.channel() as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        assert sorted(services) == sorted([HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA, own_service])
        pool = descriptor_pool.DescriptorPool(database)
        resolved = 0
        for service_name in services:
            service = pool.FindServiceByName(service_name)
            assert service.methods, service_name
            for method in service.methods:
                for message in (method.input_type, method.output_type):
                    assert pool.FindMessageTypeByName(message.full_name) is message
                    resolved += 1
        assert resolved >= 2 * (3 + 1 + 1 + len(compiled.methods))

        # The service as grpc_tools compiles Protos/: the same methods, streaming kinds and
        # message types, field by field (proto3 `optional` included).
        reflected = pool.FindServiceByName(own_service)
        assert [m.name for m in reflected.methods] == [m.name for m in compiled.methods]
        for ours, theirs in zip(reflected.methods, compiled.methods):
            assert (ours.client_streaming, ours.server_streaming) == (theirs.client_streaming, theirs.server_streaming)
            for mine, expected in ((ours.input_type, theirs.input_type), (ours.output_type, theirs.output_type)):
                assert mine.full_name == expected.full_name
                assert field_shape(mine) == field_shape(expected), mine.full_name


def test_v1_file_requests_send_the_file_and_its_imports(server):
    _, process = server
    with process.channel() as channel:
        by_name, by_symbol, again = reflect(channel, INFO_V1, [
            reflection_pb2.ServerReflectionRequest(file_by_filename="stb/catalog/v1/catalog.proto"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="stb.rules.v1.Rules.Evaluate"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="stb.catalog.v1.Catalog"),
        ])

    def names(response):
        files = []
        for data in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto()
            proto.ParseFromString(data)
            files.append(proto.name)
        return files

    assert names(by_name) == ["stb/catalog/v1/catalog.proto", "stb/common/v1/common.proto"]
    # common.proto went out on this stream already; the file asked for always comes.
    assert names(by_symbol) == ["stb/rules/v1/rules.proto"]
    assert names(again) == ["stb/catalog/v1/catalog.proto"]


def test_v1_unknown_symbol_gets_not_found_on_the_stream(server):
    _, process = server
    unknown = reflection_pb2.ServerReflectionRequest(host="x", file_containing_symbol="stb.nope.v1.Nothing")
    with process.channel() as channel:
        answers = reflect(channel, INFO_V1, [
            unknown,
            reflection_pb2.ServerReflectionRequest(file_by_filename="nope.proto"),
            reflection_pb2.ServerReflectionRequest(file_containing_extension=reflection_pb2.ExtensionRequest(
                containing_type="stb.testing.v1.EchoRequest", extension_number=1000)),
            reflection_pb2.ServerReflectionRequest(all_extension_numbers_of_type="stb.testing.v1.EchoRequest"),
            reflection_pb2.ServerReflectionRequest(host="only a host"),
            reflection_pb2.ServerReflectionRequest(list_services=""),
        ])
    symbol, file, extension, numbers, empty, listing = answers
    assert symbol.WhichOneof("message_response") == "error_response"
    assert symbol.error_response.error_code == NOT_FOUND
    assert "stb.nope.v1.Nothing" in symbol.error_response.error_message
    assert symbol.original_request == unknown and symbol.valid_host == "x"
    assert file.error_response.error_code == NOT_FOUND
    assert extension.error_response.error_code == NOT_FOUND
    assert numbers.all_extension_numbers_response.base_type_name == "stb.testing.v1.EchoRequest"
    assert list(numbers.all_extension_numbers_response.extension_number) == []
    assert empty.error_response.error_code == UNIMPLEMENTED
    assert REFLECTION_V1ALPHA in [s.name for s in listing.list_services_response.service]


def test_malformed_request_ends_the_call_not_the_server(server):
    _, process = server
    with process.channel() as channel:
        call = channel.stream_stream(INFO_V1ALPHA, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        # Field 4 (file_containing_symbol) claims 5 bytes and has 1; then invalid UTF-8.
        for bad in (b"\x22\x05a", b"\x22\x02\xff\xfe"):
            with pytest.raises(grpc.RpcError) as failure:
                list(call(iter([b"\x3a\x00", bad]), timeout=TIMEOUT))
            assert failure.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    assert_alive(process)


def test_truncated_stream_ends_the_call_not_the_server(server):
    _, process = server
    with RawH2(port_of(process)) as conn:
        conn.handshake()
        block = conn.encoder.encode(request_headers(INFO_V1))
        whole = grpc_message(b"\x3a\x00")
        # A whole request, then a length prefix promising 100 bytes, 3 sent, end of stream.
        conn.send(headers_frame(1, block), data_frames(1, whole + b"\x00" + struct.pack(">I", 100) + b"abc", end_stream=True))
        # Stream 3 stops in the middle of a length prefix.
        conn.send(headers_frame(3, conn.encoder.encode(request_headers(INFO_V1ALPHA))),
                  data_frames(3, b"\x00\x00", end_stream=True))
        conn.read_until(lambda f: conn.stream_ended(1) and conn.stream_ended(3), 5)
        for stream in (1, 3):
            assert conn.stream_ended(stream) or conn.resets(stream), f"stream {stream}: {conn.frames}"
            status = conn.grpc_status(stream)
            assert status == "13", f"stream {stream} ended with {status}, not INTERNAL: {conn.frames}"
    assert_alive(process)
