"""Prometheus metrics of the real catalogd: `GET /metrics` on the gRPC port, checked with
`promtool check metrics` (Debian `prometheus`) and read before and after calls from a
stock grpcio client, and a scrape interleaved with a gRPC call on one HTTP/2 connection.

Fixtures (conftest.py): `catalog_server`.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

import auth_tokens

CATALOG = "/stb.catalog.v1.Catalog"
SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def identity(data: bytes) -> bytes:
    return data


class H2Client:
    """One cleartext HTTP/2 connection (prior knowledge), driven by the `h2` library."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.responses: dict[int, dict] = {}

    def close(self):
        self.sock.close()

    def request(self, headers: list[tuple[str, str]], body: bytes | None = None) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers, end_stream=body is None)
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        self.responses[stream_id] = {"headers": {}, "body": b"", "trailers": {}, "ended": False}
        return stream_id

    def wait(self, *stream_ids: int) -> dict[int, dict]:
        while not all(self.responses[s]["ended"] for s in stream_ids):
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            for event in self.conn.receive_data(data):
                response = self.responses.get(getattr(event, "stream_id", 0))
                if isinstance(event, h2.events.ResponseReceived):
                    response["headers"] = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    response["body"] += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    response["trailers"] = dict(event.headers)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)) and response:
                    response["ended"] = True
            self.sock.sendall(self.conn.data_to_send())
        return {s: self.responses[s] for s in stream_ids}


def scrape(port: int) -> str:
    client = H2Client(port)
    try:
        stream = client.request([(":method", "GET"), (":scheme", "http"), (":path", "/metrics"),
                                 (":authority", "127.0.0.1")])
        response = client.wait(stream)[stream]
    finally:
        client.close()
    assert response["headers"][":status"] == "200"
    assert response["headers"]["content-type"].startswith("text/plain; version=0.0.4")
    return response["body"].decode()


def samples(text: str) -> dict[str, float]:
    """`name{labels}` → value, for every sample line."""
    result = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = SERIES.match(line)
        assert match, f"not a sample line: {line!r}"
        result[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return result


def requests_total(values: dict[str, float], method: str, code: str, protocol: str = "grpc") -> float:
    return values.get(
        f'stb_rpc_server_requests_total{{service="stb.catalog.v1.Catalog",method="{method}",code="{code}",protocol="{protocol}"}}', 0.0)


def test_counters_move_with_calls(catalog_server):
    before = samples(scrape(catalog_server.port))
    with catalog_server.channel() as channel:
        get_config = channel.unary_unary(f"{CATALOG}/GetConfig", request_serializer=identity, response_deserializer=identity)
        for _ in range(3):
            get_config(b"", timeout=30)
        get_option = channel.unary_unary(f"{CATALOG}/GetOption", request_serializer=identity, response_deserializer=identity)
        with pytest.raises(grpc.RpcError) as refused:
            get_option(b"", timeout=30)  # no key: refused
    code = refused.value.code().name
    after = samples(scrape(catalog_server.port))

    assert requests_total(after, "GetConfig", "OK") - requests_total(before, "GetConfig", "OK") == 3
    assert requests_total(after, "GetOption", code) - requests_total(before, "GetOption", code) == 1
    histogram = 'stb_rpc_server_request_duration_seconds_count{service="stb.catalog.v1.Catalog",method="GetConfig"}'
    assert after[histogram] - before.get(histogram, 0.0) == 3
    assert after['stb_rpc_server_calls_in_flight{service="stb.catalog.v1.Catalog",method="GetConfig"}'] == 0
    for counter in ("stb_rpc_server_received_bytes_total", "stb_rpc_server_sent_bytes_total"):
        assert after[counter] > before[counter], counter
    assert after["stb_rpc_server_connections"] >= 1
    # GetConfig reads the database through the pool.
    assert after["stb_pg_query_duration_seconds_count"] > before.get("stb_pg_query_duration_seconds_count", 0.0)
    assert after["stb_pg_pool_connections"] >= 1
    assert after["stb_pg_pool_waiters"] == 0


def test_exposition_passes_promtool(catalog_server, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; scripts/install-deps installs it)")
    with catalog_server.channel() as channel:
        channel.unary_unary(f"{CATALOG}/GetConfig", request_serializer=identity, response_deserializer=identity)(b"", timeout=30)
    text = scrape(catalog_server.port)
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"promtool check metrics failed:\n{result.stdout}{result.stderr}\n--- exposition ---\n{text}"


def test_scrape_beside_grpc_on_one_connection(catalog_server):
    client = H2Client(catalog_server.port)
    try:
        grpc_headers = [(":method", "POST"), (":scheme", "http"), (":path", "/grpc.health.v1.Health/Check"),
                        (":authority", "127.0.0.1"), ("content-type", "application/grpc"), ("te", "trailers")]
        first = client.request(grpc_headers, body=b"\x00\x00\x00\x00\x00")
        metrics = client.request([(":method", "GET"), (":scheme", "http"), (":path", "/metrics"),
                                  (":authority", "127.0.0.1")])
        other = client.request([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "127.0.0.1")])
        second = client.request(grpc_headers, body=b"\x00\x00\x00\x00\x00")
        responses = client.wait(first, metrics, other, second)
    finally:
        client.close()
    for stream in (first, second):
        assert responses[stream]["headers"][":status"] == "200"
        assert responses[stream]["trailers"].get("grpc-status") == "0", responses[stream]
        # SERVING (1) in a HealthCheckResponse: field 1, varint.
        assert responses[stream]["body"] == b"\x00\x00\x00\x00\x02\x08\x01"
    assert responses[metrics]["headers"][":status"] == "200"
    assert "stb_rpc_server_connections" in responses[metrics]["body"].decode()
    assert responses[other]["headers"][":status"] == "415"


def test_refusals_are_counted_with_their_status(catalog_server):
    """Authentication runs inside the metrics interceptor: refused calls are counted
    under UNAUTHENTICATED and PERMISSION_DENIED like any other status."""
    before = samples(scrape(catalog_server.port))
    with catalog_server.raw_channel() as channel:
        get_config = channel.unary_unary(f"{CATALOG}/GetConfig", request_serializer=identity, response_deserializer=identity)
        with pytest.raises(grpc.RpcError) as missing:
            get_config(b"", timeout=30)
        delete = channel.unary_unary(f"{CATALOG}/DeleteOption", request_serializer=identity, response_deserializer=identity)
        with pytest.raises(grpc.RpcError) as denied:
            delete(b"", timeout=30, metadata=auth_tokens.metadata(auth_tokens.mint("viewer")))
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    after = samples(scrape(catalog_server.port))
    assert requests_total(after, "GetConfig", "UNAUTHENTICATED") - requests_total(before, "GetConfig", "UNAUTHENTICATED") == 1
    assert requests_total(after, "DeleteOption", "PERMISSION_DENIED") - requests_total(before, "DeleteOption", "PERMISSION_DENIED") == 1
