"""The Connect protocol (connectrpc.com/docs/protocol) beside gRPC on the same port.

A small Connect client, written from the protocol document on the `h2` package (h2c with
prior knowledge), calls stb-echo-server and catalogd: unary calls with protobuf and JSON
bodies, server-, client- and bidirectional streams in 5-byte envelopes ending with the
end-of-stream message, errors with their HTTP status and JSON body whose details decode
as google.rpc messages, metadata, deadlines (connect-timeout-ms), compression refused,
unsupported media types, and each kind of bad input; and `curl` with a JSON body, as the
README shows it.

Fixtures (conftest.py): `echo_server`, `start_server`, `stubs`, `catalog_server`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import uuid

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from google.rpc import error_details_pb2

import auth_tokens
from conftest import REPO

ECHO = "/stb.testing.v1.Echo"
CATALOG = "/stb.catalog.v1.Catalog"
DETAIL_TYPES = {
    "google.rpc.BadRequest": error_details_pb2.BadRequest,
    "google.rpc.ErrorInfo": error_details_pb2.ErrorInfo,
    "google.rpc.PreconditionFailure": error_details_pb2.PreconditionFailure,
    "google.rpc.RetryInfo": error_details_pb2.RetryInfo,
}


class Response:
    def __init__(self):
        self.headers: dict[str, str] = {}
        self.body = b""
        self.ended = False
        self.reset: int | None = None

    @property
    def status(self) -> int:
        return int(self.headers[":status"])

    def json(self):
        return json.loads(self.body)

    def envelopes(self) -> list[tuple[int, bytes]]:
        """The body as (flags, message) envelopes; asserts nothing is left over."""
        result, data = [], self.body
        while data:
            assert len(data) >= 5, f"a partial envelope header: {data!r}"
            flags, length = struct.unpack(">BI", data[:5])
            assert len(data) >= 5 + length, "a partial envelope"
            result.append((flags, data[5:5 + length]))
            data = data[5 + length:]
        return result

    def end_stream(self) -> dict:
        """The end-of-stream message, checked to be the last envelope and the only one with flag 0x02."""
        envelopes = self.envelopes()
        assert envelopes, "no end-of-stream envelope"
        assert all(flags == 0 for flags, _ in envelopes[:-1]), envelopes
        flags, message = envelopes[-1]
        assert flags == 0x02, envelopes
        return json.loads(message)


class ConnectClient:
    """One h2c connection; each call is a POST with the Connect headers given."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.responses: dict[int, Response] = {}

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self, path: str, content_type: str | None, body: bytes, headers=(), end: bool = True) -> int:
        stream = self.conn.get_next_available_stream_id()
        request = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1")]
        if content_type is not None:
            request.append(("content-type", content_type))
        self.conn.send_headers(stream, request + list(headers))
        self.responses[stream] = Response()
        offset = 0
        while True:
            window = min(self.conn.local_flow_control_window(stream), self.conn.max_outbound_frame_size)
            if window == 0:
                self._pump()
                if self.responses[stream].ended:
                    return stream
                continue
            chunk = body[offset:offset + window]
            offset += len(chunk)
            last = offset >= len(body)
            self.conn.send_data(stream, chunk, end_stream=last and end)
            self.sock.sendall(self.conn.data_to_send())
            if last:
                return stream

    def _pump(self):
        data = self.sock.recv(65536)
        assert data, "the server closed the connection"
        for event in self.conn.receive_data(data):
            response = self.responses.get(getattr(event, "stream_id", 0))
            if response is None:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                response.headers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                response.body += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                response.ended = True
            elif isinstance(event, h2.events.StreamReset):
                response.reset = event.error_code
                response.ended = True
        self.sock.sendall(self.conn.data_to_send())

    def wait(self, stream: int, until=None) -> Response:
        response = self.responses[stream]
        while not response.ended and not (until and until(response)):
            self._pump()
        return response

    def call(self, path: str, content_type: str | None, body: bytes, headers=()) -> Response:
        return self.wait(self.start(path, content_type, body, headers))


def envelope(message: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(message)) + message


def unary(port: int, path: str, content_type: str | None, body: bytes, headers=()) -> Response:
    with ConnectClient(port) as client:
        return client.call(path, content_type, body, headers)


def decode_details(error: dict) -> list:
    """Each detail as its google.rpc message; the value is unpadded base64, as the protocol says."""
    result = []
    for detail in error.get("details", []):
        value = detail["value"]
        assert "=" not in value, "details are sent without padding"
        message = DETAIL_TYPES[detail["type"]]()
        message.ParseFromString(base64.b64decode(value + "=" * (-len(value) % 4)))
        result.append(message)
    return result


@pytest.fixture(scope="module")
def echo(echo_server):
    return echo_server.port


# -- unary -------------------------------------------------------------------------------------


def test_unary_proto(echo, stubs):
    request = stubs.pb2.EchoRequest(text="hi", payload=b"\x00\xff")
    for headers in ((), (("connect-protocol-version", "1"),)):
        response = unary(echo, f"{ECHO}/Get", "application/proto", request.SerializeToString(), headers)
        assert response.status == 200, response.body
        assert response.headers["content-type"] == "application/proto"
        assert int(response.headers["content-length"]) == len(response.body)
        reply = stubs.pb2.EchoResponse.FromString(response.body)
        assert (reply.text, reply.payload) == ("hi", b"\x00\xff")


def test_unary_empty_body_is_the_empty_message(echo, stubs):
    response = unary(echo, f"{ECHO}/Get", "application/proto", b"")
    assert response.status == 200
    assert response.body == b""


def test_unary_json(echo):
    response = unary(echo, f"{ECHO}/Get", "application/json", b'{"text":"hi"}')
    assert response.status == 200, response.body
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"text": "hi"}


def test_unary_json_content_type_parameters_and_case(echo):
    response = unary(echo, f"{ECHO}/Get", "Application/JSON; charset=utf-8", b'{"text":"hi"}')
    assert response.status == 200, response.body
    assert response.json() == {"text": "hi"}


def test_unary_metadata_leading_and_trailing(echo, stubs):
    body = stubs.pb2.EchoRequest(text="m").SerializeToString()
    response = unary(echo, f"{ECHO}/Get", "application/proto", body, (("x-echo-one", "1"),))
    assert response.status == 200
    assert response.headers["x-echo-one"] == "1"
    assert response.headers["trailer-x-echo-one"] == "1"
    # Connect headers are not metadata: they are not echoed.
    response = unary(echo, f"{ECHO}/Get", "application/proto", body, (("connect-timeout-ms", "5000"),))
    assert not any(name.startswith("trailer-connect") for name in response.headers)


def test_unary_error_status_and_body(echo, stubs):
    body = stubs.pb2.EchoRequest(text="gone away", fail_with_code=5).SerializeToString()
    response = unary(echo, f"{ECHO}/Get", "application/proto", body)
    assert response.status == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"code": "not_found", "message": "gone away"}


@pytest.mark.parametrize("code,name,http", [
    (1, "canceled", 499), (2, "unknown", 500), (3, "invalid_argument", 400), (4, "deadline_exceeded", 504),
    (6, "already_exists", 409), (7, "permission_denied", 403), (8, "resource_exhausted", 429),
    (9, "failed_precondition", 400), (10, "aborted", 409), (11, "out_of_range", 400), (12, "unimplemented", 501),
    (13, "internal", 500), (14, "unavailable", 503), (15, "data_loss", 500), (16, "unauthenticated", 401),
])
def test_unary_error_codes_map_to_http(echo, stubs, code, name, http):
    body = stubs.pb2.EchoRequest(text="x", fail_with_code=code).SerializeToString()
    response = unary(echo, f"{ECHO}/Get", "application/proto", body)
    assert (response.status, response.json()["code"]) == (http, name)


def test_unknown_method_is_unimplemented(echo):
    response = unary(echo, f"{ECHO}/Nope", "application/proto", b"")
    assert response.status == 501
    assert response.json()["code"] == "unimplemented"


def test_other_protocol_version_is_refused(echo):
    response = unary(echo, f"{ECHO}/Get", "application/proto", b"", (("connect-protocol-version", "2"),))
    assert response.status == 400
    assert response.json()["code"] == "invalid_argument"


# -- streaming ---------------------------------------------------------------------------------


def test_server_streaming_proto(echo, stubs):
    body = envelope(stubs.pb2.EchoRequest(text="s", count=3).SerializeToString())
    response = unary(echo, f"{ECHO}/Expand", "application/connect+proto", body, (("x-echo-tag", "t"),))
    assert response.status == 200
    assert response.headers["content-type"] == "application/connect+proto"
    assert response.headers["x-echo-tag"] == "t"
    end = response.end_stream()
    assert end == {"metadata": {"x-echo-tag": ["t"]}}
    replies = [stubs.pb2.EchoResponse.FromString(m) for _, m in response.envelopes()[:-1]]
    assert [(r.text, r.index) for r in replies] == [("s", 0), ("s", 1), ("s", 2)]


def test_server_streaming_json(echo):
    response = unary(echo, f"{ECHO}/Expand", "application/connect+json", envelope(b'{"text":"j","count":2}'))
    assert response.status == 200
    assert response.headers["content-type"] == "application/connect+json"
    assert response.end_stream() == {}
    assert [json.loads(m) for _, m in response.envelopes()[:-1]] == [{"text": "j"}, {"text": "j", "index": 1}]


def test_server_streaming_error_after_messages(echo, stubs):
    body = envelope(stubs.pb2.EchoRequest(text="late", count=2, fail_with_code=14).SerializeToString())
    response = unary(echo, f"{ECHO}/Expand", "application/connect+proto", body)
    assert response.status == 200
    assert len(response.envelopes()) == 3
    error = response.end_stream()["error"]
    assert error["code"] == "unavailable"
    assert error["message"] == "late"


def test_client_and_bidirectional_streaming(echo, stubs):
    requests = b"".join(envelope(stubs.pb2.EchoRequest(text=t).SerializeToString()) for t in ("a", "b", "c"))
    collected = unary(echo, f"{ECHO}/Collect", "application/connect+proto", requests)
    assert collected.status == 200
    assert collected.end_stream() == {}
    (_, message), _ = collected.envelopes()
    assert stubs.pb2.EchoResponse.FromString(message).text == "a b c"

    updated = unary(echo, f"{ECHO}/Update", "application/connect+proto", requests)
    assert updated.end_stream() == {}
    assert [stubs.pb2.EchoResponse.FromString(m).text for _, m in updated.envelopes()[:-1]] == ["a", "b", "c"]


def test_bidirectional_answers_before_the_request_ends(echo, stubs):
    with ConnectClient(echo) as client:
        stream = client.start(f"{ECHO}/Update", "application/connect+proto",
                              envelope(stubs.pb2.EchoRequest(text="first").SerializeToString()), end=False)
        response = client.wait(stream, until=lambda r: len(r.body) >= 5 and len(r.body) >= 5 + struct.unpack(">I", r.body[1:5])[0])
        assert not response.ended
        (flags, message), = response.envelopes()
        assert flags == 0 and stubs.pb2.EchoResponse.FromString(message).text == "first"
        client.conn.end_stream(stream)
        client.sock.sendall(client.conn.data_to_send())
        assert client.wait(stream).end_stream() == {}


def test_unary_content_type_on_a_streaming_method_is_415(echo):
    response = unary(echo, f"{ECHO}/Expand", "application/proto", b"")
    assert response.status == 415
    streaming = unary(echo, f"{ECHO}/Get", "application/connect+proto", envelope(b""))
    assert streaming.status == 415


# -- deadlines, compression, media types -----------------------------------------------------


def test_unary_deadline(echo, stubs):
    body = stubs.pb2.EchoRequest(text="slow", delay_ms=20_000).SerializeToString()
    started = time.monotonic()
    response = unary(echo, f"{ECHO}/Get", "application/proto", body, (("connect-timeout-ms", "200"),))
    # Half the handler's 20 s: the deadline ended the call.
    assert time.monotonic() - started < 10
    assert response.status == 504
    assert response.json()["code"] == "deadline_exceeded"


def test_streaming_deadline(echo, stubs):
    body = envelope(stubs.pb2.EchoRequest(text="slow", count=10, delay_ms=150).SerializeToString())
    response = unary(echo, f"{ECHO}/Expand", "application/connect+proto", body, (("connect-timeout-ms", "400"),))
    assert response.status == 200
    assert 1 <= len(response.envelopes()) - 1 < 10
    assert response.end_stream()["error"]["code"] == "deadline_exceeded"


@pytest.mark.parametrize("value", ["abc", "", "12345678901", "-5", "1.5"])
def test_malformed_timeout_is_invalid_argument(echo, value):
    response = unary(echo, f"{ECHO}/Get", "application/proto", b"", (("connect-timeout-ms", value),))
    assert response.status == 400
    assert response.json()["code"] == "invalid_argument"


def test_compression_is_refused(echo):
    response = unary(echo, f"{ECHO}/Get", "application/proto", b"", (("content-encoding", "gzip"),))
    assert response.status == 501
    assert response.json()["code"] == "unimplemented"
    assert response.headers["accept-encoding"] == "identity"
    assert unary(echo, f"{ECHO}/Get", "application/proto", b"", (("content-encoding", "identity"),)).status == 200

    stream = unary(echo, f"{ECHO}/Expand", "application/connect+proto", envelope(b""),
                   (("connect-content-encoding", "br"),))
    assert stream.status == 200
    assert stream.headers["connect-accept-encoding"] == "identity"
    assert stream.end_stream()["error"]["code"] == "unimplemented"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/connect+xml", None])
def test_unsupported_media_type(echo, content_type):
    response = unary(echo, f"{ECHO}/Get", content_type, b"{}")
    assert response.status == 415
    accepted = {t.strip() for t in response.headers["accept-post"].split(",")}
    assert {"application/json", "application/proto", "application/connect+json", "application/connect+proto",
            "application/grpc"} <= accepted


def test_grpc_on_the_same_connection(echo, stubs):
    """gRPC and Connect calls interleave on one HTTP/2 connection."""
    body = stubs.pb2.EchoRequest(text="both").SerializeToString()
    with ConnectClient(echo) as client:
        connect = client.start(f"{ECHO}/Get", "application/proto", body)
        grpc_call = client.start(f"{ECHO}/Get", "application/grpc", envelope(body), (("te", "trailers"),))
        assert client.wait(connect).status == 200
        response = client.wait(grpc_call)
        assert response.headers["content-type"] == "application/grpc"
        (_, message), = response.envelopes()
        assert stubs.pb2.EchoResponse.FromString(message).text == "both"


# -- bad input ---------------------------------------------------------------------------------


def test_bad_json_is_invalid_argument(echo):
    # (body, field named in the message, field of the BadRequest detail)
    cases = ((b'{"text":', None, None), (b"[1]", None, None), (b"", None, None), (b'{"text":5}', "text", "text"),
             (b'{"count":"many"}', "count", "count"), (b'{"count":-1}', "count", "count"), (b'{"nope":1}', "nope", None))
    for body, named, field in cases:
        response = unary(echo, f"{ECHO}/Get", "application/json", body)
        assert response.status == 400, body
        error = response.json()
        assert error["code"] == "invalid_argument", body
        if named:
            assert named in error["message"], (body, error)
        if field:
            (bad_request,) = decode_details(error)
            assert [v.field for v in bad_request.field_violations] == [field], (body, error)


def test_bad_json_in_a_stream_is_invalid_argument(echo):
    response = unary(echo, f"{ECHO}/Collect", "application/connect+json", envelope(b'{"text":"a"}') + envelope(b'{"text":[]}'))
    assert response.end_stream()["error"]["code"] == "invalid_argument"


def test_bad_proto_is_refused_without_internals(echo):
    response = unary(echo, f"{ECHO}/Get", "application/proto", b"\xff\xff\xff")
    assert response.status == 500
    error = response.json()
    assert error["code"] == "internal"
    assert "stb.testing.v1.EchoRequest" in error["message"]
    assert "Swift" not in error["message"] and "/work" not in error["message"]


def test_oversize_bodies_are_resource_exhausted(start_server, stubs):
    server = start_server(STB_RPC_MAX_RECEIVE_MESSAGE_BYTES="1024")
    response = unary(server.port, f"{ECHO}/Get", "application/proto", b"\x0a\x82\x10" + b"x" * 2050)
    assert response.status == 429
    assert response.json()["code"] == "resource_exhausted"
    # A body far over the limit is refused at once, not read to its end first.
    with ConnectClient(server.port) as client:
        stream = client.start(f"{ECHO}/Get", "application/proto", b"x" * 2048, end=False)
        assert client.wait(stream).status == 429
    # An envelope announcing more than the limit: refused from its prefix.
    stream_response = unary(server.port, f"{ECHO}/Expand", "application/connect+proto", struct.pack(">BI", 0, 1 << 30))
    assert stream_response.end_stream()["error"]["code"] == "resource_exhausted"
    # Still serving.
    ok = unary(server.port, f"{ECHO}/Get", "application/proto", stubs.pb2.EchoRequest(text="ok").SerializeToString())
    assert ok.status == 200


def test_truncated_envelope_is_invalid_argument(echo):
    response = unary(echo, f"{ECHO}/Expand", "application/connect+proto", struct.pack(">BI", 0, 10) + b"abc")
    assert response.end_stream()["error"]["code"] == "invalid_argument"
    partial_header = unary(echo, f"{ECHO}/Collect", "application/connect+proto", b"\x00\x00")
    assert partial_header.end_stream()["error"]["code"] == "invalid_argument"


def test_request_envelope_flags(echo):
    end_flag = unary(echo, f"{ECHO}/Collect", "application/connect+proto", envelope(b"", flags=0x02))
    assert end_flag.end_stream()["error"]["code"] == "invalid_argument"
    compressed = unary(echo, f"{ECHO}/Collect", "application/connect+proto", envelope(b"", flags=0x01))
    assert compressed.end_stream()["error"]["code"] == "internal"


def test_server_survives_every_bad_input(echo, stubs, echo_server):
    echo_server.assert_alive("after the Connect bad-input tests")
    assert unary(echo, f"{ECHO}/Get", "application/proto", b"").status == 200


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_label_the_protocol(start_server, stubs):
    server = start_server(STB_ECHO_METRICS="1")
    body = stubs.pb2.EchoRequest(text="m").SerializeToString()
    assert unary(server.port, f"{ECHO}/Get", "application/proto", body).status == 200
    with ConnectClient(server.port) as client:
        assert client.call(f"{ECHO}/Get", "application/grpc", envelope(body), (("te", "trailers"),)).status == 200
        for path in ("/metrics", "/metrics/echo"):
            stream = client.conn.get_next_available_stream_id()
            client.conn.send_headers(stream, [(":method", "GET"), (":scheme", "http"), (":path", path),
                                              (":authority", "127.0.0.1")], end_stream=True)
            client.sock.sendall(client.conn.data_to_send())
            client.responses[stream] = Response()
            scrape = client.wait(stream)
            assert scrape.status == 200, path
            text = scrape.body.decode()
            for protocol in ("grpc", "connect"):
                assert (f'stb_rpc_server_requests_total{{service="stb.testing.v1.Echo",method="Get",code="OK",'
                        f'protocol="{protocol}"}} 1') in text, text


# -- catalogd ----------------------------------------------------------------------------------

TOKEN = auth_tokens.mint("admin", "pytest-connect")
METADATA = (("authorization", f"Bearer {TOKEN}"),)
DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"


@pytest.fixture(scope="module")
def catalog(catalog_server, stubs):
    """catalogd with the demo catalog loaded (over gRPC)."""
    cpb = stubs.catalog_pb2
    with catalog_server.channel() as channel:
        grpc.channel_ready_future(channel).result(timeout=15)
        stubs.catalog_grpc.CatalogStub(channel).ImportSeed(
            cpb.ImportSeedRequest(document_json=DEMO_SEED.read_text(), file_name="demo.json"),
            metadata=METADATA, timeout=15)
    return catalog_server


def test_catalog_authenticates_connect_calls(catalog, stubs):
    """The same interceptors as gRPC: no token, no catalog (401 with an ErrorInfo)."""
    response = unary(catalog.port, f"{CATALOG}/GetConfig", "application/proto", b"")
    assert response.status == 401
    error = response.json()
    assert error["code"] == "unauthenticated"
    infos = [d for d in decode_details(error) if isinstance(d, error_details_pb2.ErrorInfo)]
    assert infos and infos[0].reason == "TOKEN_MISSING", error
    assert TOKEN not in response.body.decode()


def test_catalog_get_config_proto(catalog, stubs):
    cpb = stubs.catalog_pb2
    response = unary(catalog.port, f"{CATALOG}/GetConfig", "application/proto", b"", METADATA)
    assert response.status == 200, response.body
    config = cpb.GetConfigResponse.FromString(response.body)
    assert config.revision > 0 and "video" in [m.module.key for m in config.modules]


def test_catalog_error_details(catalog, stubs):
    cpb = stubs.catalog_pb2
    request = cpb.CreateOptionRequest(option=cpb.Option(
        module_key="video", group_key="output", key=f"connect_bad_{uuid.uuid4().hex[:8]}", name="Bad",
        type=cpb.OPTION_TYPE_INTEGER, default_value="abc"))
    response = unary(catalog.port, f"{CATALOG}/CreateOption", "application/proto",
                     request.SerializeToString(), METADATA)
    assert response.status == 400
    error = response.json()
    assert error["code"] == "invalid_argument"
    details = decode_details(error)
    bad_requests = [d for d in details if isinstance(d, error_details_pb2.BadRequest)]
    infos = [d for d in details if isinstance(d, error_details_pb2.ErrorInfo)]
    assert [(v.field, v.description) for v in bad_requests[0].field_violations] == [
        ("option.default_value", '"abc" is not an integer')]
    assert infos and infos[0].domain == "stb" and infos[0].reason == "INVALID_ARGUMENT"


def test_catalog_watch_streams_envelopes(catalog_server, stubs):
    cpb = stubs.catalog_pb2
    before = cpb.GetConfigResponse.FromString(
        unary(catalog_server.port, f"{CATALOG}/GetConfig", "application/proto", b"", METADATA).body)
    key = f"connect_{uuid.uuid4().hex[:8]}"
    with catalog_server.channel() as channel:
        stubs.catalog_grpc.CatalogStub(channel).CreateModule(
            cpb.CreateModuleRequest(module=cpb.Module(key=key, name="Connect watch")), metadata=METADATA, timeout=30)
    with ConnectClient(catalog_server.port) as client:
        stream = client.start(f"{CATALOG}/Watch", "application/connect+proto",
                              envelope(cpb.WatchRequest(after=before.cursor).SerializeToString()), METADATA)
        response = client.wait(stream, until=lambda r: len(r.body) >= 5 and len(r.body) >= 5 + struct.unpack(">I", r.body[1:5])[0])
        assert response.status == 200
        assert response.headers["content-type"] == "application/connect+proto"
        flags, message = response.envelopes()[0]
        assert flags == 0
        event = cpb.ChangeEvent.FromString(message)
        assert event.entity == "module" and event.key == key, event


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_get_config_as_json(catalog):
    result = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--http2-prior-knowledge", "-H", "content-type: application/json",
         "-H", f"authorization: Bearer {TOKEN}", "-d", "{}", f"http://127.0.0.1:{catalog.port}/stb.catalog.v1.Catalog/GetConfig"],
        capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    config = json.loads(result.stdout)
    assert int(config["revision"]) > 0, config
    assert "video" in [m["module"]["key"] for m in config["modules"]]
