"""A stock grpcio client (and the `h2` library, for HTTP-level checks) against stb-echo-server."""

from __future__ import annotations

import os
import queue
import signal
import socket
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

ECHO = "/stb.testing.v1.Echo"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def channel(echo_server):
    with echo_server.channel([("grpc.max_receive_message_length", 8 * MiB)]) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield channel


@pytest.fixture(scope="module")
def echo(channel, stubs):
    return stubs.grpc.EchoStub(channel)


@pytest.fixture(scope="module")
def health(channel):
    return health_pb2_grpc.HealthStub(channel)


@pytest.fixture
def pb(stubs):
    return stubs.pb2


def assert_server_healthy(server, channel):
    server.assert_alive()
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# -- RPC shapes ----------------------------------------------------------------------------


def test_unary(echo, pb):
    payload = bytes(range(256)) * 4
    reply = echo.Get(pb.EchoRequest(text="hello, wörld", payload=payload), timeout=30)
    assert reply.text == "hello, wörld"
    assert reply.payload == payload
    assert reply.index == 0


def test_unary_empty_request(echo, pb):
    reply = echo.Get(pb.EchoRequest(), timeout=30)
    assert reply == pb.EchoResponse()


def test_server_streaming_1000_in_order(echo, pb):
    replies = list(echo.Expand(pb.EchoRequest(text="tick", payload=b"p", count=1000), timeout=20))
    assert [r.index for r in replies] == list(range(1000))
    assert all(r.text == "tick" and r.payload == b"p" for r in replies)


def test_server_streaming_zero_count(echo, pb):
    call = echo.Expand(pb.EchoRequest(text="none", count=0), timeout=30)
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK


def test_client_streaming(echo, pb):
    texts = ["alpha", "beta", "gamma", "δέλτα", "epsilon"]
    reply = echo.Collect(iter([pb.EchoRequest(text=t) for t in texts]), timeout=30)
    assert reply.text == " ".join(texts)
    assert reply.index == len(texts)


def test_client_streaming_no_messages(echo, pb):
    reply = echo.Collect(iter([]), timeout=30)
    assert reply.text == ""
    assert reply.index == 0


def test_bidi_interleaved(echo, pb):
    """Send one, read one, 50 times: replies must arrive before the request stream ends."""
    requests: queue.Queue = queue.Queue()

    def request_iterator():
        while True:
            item = requests.get(timeout=15)
            if item is None:
                return
            yield item

    responses = echo.Update(request_iterator(), timeout=20)
    for i in range(50):
        requests.put(pb.EchoRequest(text=f"message {i}", payload=bytes([i])))
        reply = next(responses)
        assert (reply.index, reply.text, reply.payload) == (i, f"message {i}", bytes([i]))
    requests.put(None)
    assert list(responses) == []
    assert responses.code() == grpc.StatusCode.OK


# -- status, deadline, cancellation --------------------------------------------------------


NASTY_MESSAGE = "Prüfung fehlgeschlagen: 100% ✗ — 日本語 %41 %zz\tend"


@pytest.mark.parametrize("code", [grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT,
                                  grpc.StatusCode.UNAUTHENTICATED])
def test_error_status_round_trip(echo, pb, code):
    with pytest.raises(grpc.RpcError) as failure:
        echo.Get(pb.EchoRequest(text=NASTY_MESSAGE, fail_with_code=code.value[0]), timeout=30)
    assert failure.value.code() == code
    assert failure.value.details() == NASTY_MESSAGE


def test_error_after_streamed_messages(echo, pb):
    call = echo.Expand(pb.EchoRequest(text="50% done ✓", count=3, fail_with_code=10), timeout=30)
    received = []
    with pytest.raises(grpc.RpcError) as failure:
        for reply in call:
            received.append(reply.index)
    assert received == [0, 1, 2]
    assert failure.value.code() == grpc.StatusCode.ABORTED
    assert failure.value.details() == "50% done ✓"


def test_deadline_exceeded(echo_server, echo, pb, channel):
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as failure:
        echo.Get(pb.EchoRequest(text="slow", delay_ms=20_000), timeout=0.3)
    elapsed = time.monotonic() - started
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Half the handler's 20 s: the deadline ended the call.
    assert elapsed < 10
    assert_server_healthy(echo_server, channel)


def test_cancellation_mid_stream(echo_server, echo, pb, channel):
    call = echo.Expand(pb.EchoRequest(text="c", count=100, delay_ms=100), timeout=30)
    first = [next(call).index, next(call).index]
    assert first == [0, 1]
    started = time.monotonic()
    assert call.cancel()
    with pytest.raises(grpc.RpcError) as failure:
        for _ in call:
            pass
    assert failure.value.code() == grpc.StatusCode.CANCELLED
    # Half the 10 s the stream would run: the cancel ended it.
    assert time.monotonic() - started < 5
    assert_server_healthy(echo_server, channel)
    # The same connection still carries new calls.
    assert echo.Get(pb.EchoRequest(text="after cancel"), timeout=30).text == "after cancel"


# -- metadata ------------------------------------------------------------------------------


def _pairs(metadata):
    return [(m.key, m.value) for m in metadata]


def test_metadata_echoed_in_headers_and_trailers(echo, pb):
    binary = bytes([0x00, 0xFF, 0x10, 0x80, 0x00, 0x7F, 0xFE])
    sent = [
        ("x-echo-text", "plain ascii value !~"),
        ("x-echo-data-bin", binary),
        ("x-echo-short-bin", b"\xff"),
        ("x-not-echoed", "private"),
    ]
    reply, call = echo.Get.with_call(pb.EchoRequest(text="md"), metadata=sent, timeout=30)
    assert reply.text == "md"
    expected = [("x-echo-text", "plain ascii value !~"), ("x-echo-data-bin", binary), ("x-echo-short-bin", b"\xff")]
    for name, metadata in (("initial", call.initial_metadata()), ("trailing", call.trailing_metadata())):
        pairs = _pairs(metadata)
        for item in expected:
            assert item in pairs, f"{item} missing from {name} metadata {pairs}"
        assert all(key != "x-not-echoed" for key, _ in pairs), f"{name}: {pairs}"


def test_metadata_echoed_on_error(echo, pb):
    with pytest.raises(grpc.RpcError) as failure:
        echo.Get(pb.EchoRequest(text="nope", fail_with_code=5), metadata=[("x-echo-id", "42")], timeout=30)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    assert ("x-echo-id", "42") in _pairs(failure.value.trailing_metadata())


# -- statuses that quote huge values -------------------------------------------------------


@pytest.mark.parametrize("size", [100_000, 1_000_000])
def test_huge_status_message_arrives_promptly(echo_server, echo, pb, channel, size):
    # A status message (or trailer block) over the client's header-list limit would keep
    # the status from arriving at all: the client would wait for its deadline.
    text = "option.key: " + "k" * size
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as failure:
        echo.Get(pb.EchoRequest(text=text, fail_with_code=3), timeout=20)
    assert time.monotonic() - started < 10
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = failure.value.details()
    assert details.startswith("option.key: kkkk")
    assert details.endswith(f"… [truncated; {len(text)} bytes in all]")
    assert len(details.encode()) <= 2048
    assert echo.Get(pb.EchoRequest(text="next"), timeout=30).text == "next"
    assert_server_healthy(echo_server, channel)


@pytest.mark.parametrize("code", [0, 9])
def test_huge_response_metadata_is_dropped_status_arrives(echo, pb, code):
    started = time.monotonic()
    request = pb.EchoRequest(text="padded", fail_with_code=code, metadata_padding_bytes=100_000)
    if code == 0:
        reply, call = echo.Get.with_call(request, timeout=20)
        assert reply.text == "padded"
        assert all(key != "x-echo-padding" for key, _ in _pairs(call.initial_metadata()))
        assert all(key != "x-echo-padding" for key, _ in _pairs(call.trailing_metadata()))
    else:
        with pytest.raises(grpc.RpcError) as failure:
            echo.Get(request, timeout=20)
        assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert failure.value.details() == "padded"
    assert time.monotonic() - started < 10


# -- strings in requests ---------------------------------------------------------------------


@pytest.mark.parametrize("text, details", [
    (b"\xff\xfe", "text: not valid UTF-8"),
    (b"\xc0\xaf", "text: not valid UTF-8"),
    (b"\xed\xa0\x80", "text: not valid UTF-8"),
    (b"\xf4\x90\x80\x80", "text: not valid UTF-8"),
    (b"K\x00 DROP TABLE", "text: contains a NUL character"),
])
def test_bad_string_is_invalid_argument_before_the_handler(channel, text, details):
    # Raw bytes: Python's protobuf would refuse to encode these strings itself.
    # fail_with_code=5 would make the handler answer NOT_FOUND if it ran.
    get = channel.unary_unary(f"{ECHO}/Get")
    request = bytes([0x0A, len(text)]) + text + bytes([0x28, 0x05])
    with pytest.raises(grpc.RpcError) as failure:
        get(request, timeout=30)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details() == details


# -- message size --------------------------------------------------------------------------


def test_oversized_request_resource_exhausted(echo_server, echo, pb, channel):
    with pytest.raises(grpc.RpcError) as failure:
        echo.Get(pb.EchoRequest(payload=b"x" * (5 * MiB)), timeout=30)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_server_healthy(echo_server, channel)


def test_three_mib_round_trip(echo_server, stubs, pb):
    # A new connection: on a channel with history, grpcio's own WINDOW_UPDATEs and BDP
    # pings now and then wake the stalled server up and hide the bug.
    with echo_server.channel([("grpc.max_receive_message_length", 8 * MiB)]) as channel:
        payload = os.urandom(3 * MiB)
        reply = stubs.grpc.EchoStub(channel).Get(pb.EchoRequest(text="big", payload=payload), timeout=20)
        assert reply.payload == payload


def test_under_one_mib_round_trip(echo, pb):
    payload = os.urandom(900 * 1024)
    assert echo.Get(pb.EchoRequest(text="big", payload=payload), timeout=30).payload == payload


def test_two_mib_streamed_in_512k_messages(echo, pb):
    payload = os.urandom(512 * 1024)
    replies = list(echo.Expand(pb.EchoRequest(payload=payload, count=4), timeout=30))
    assert [r.index for r in replies] == [0, 1, 2, 3]
    assert all(r.payload == payload for r in replies)


# -- unknown methods -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"{ECHO}/DoesNotExist", "/no.such.Service/Get", f"{ECHO}/get"])
def test_unknown_method_unimplemented(channel, path):
    method = channel.unary_unary(path)
    with pytest.raises(grpc.RpcError) as failure:
        method(b"", timeout=30)
    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- health --------------------------------------------------------------------------------


def test_health_check_serving(health):
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_health_check_unknown_service(health):
    with pytest.raises(grpc.RpcError) as failure:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=30)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("service, expected", [
    ("", health_pb2.HealthCheckResponse.SERVING),
    ("no.such.Service", health_pb2.HealthCheckResponse.SERVICE_UNKNOWN),
], ids=["server", "unknown-service"])
def test_health_watch_first_message(health, service, expected):
    call = health.Watch(health_pb2.HealthCheckRequest(service=service), timeout=30)
    try:
        assert next(call).status == expected
    finally:
        call.cancel()


def test_health_list(health):
    reply = health.List(health_pb2.HealthListRequest(), timeout=30)
    assert reply.statuses[""].status == health_pb2.HealthCheckResponse.SERVING


# -- graceful shutdown ---------------------------------------------------------------------


def test_graceful_shutdown(start_server, stubs):
    server = start_server()
    pb = stubs.pb2
    with server.channel() as channel:
        echo = stubs.grpc.EchoStub(channel)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=15)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        later: list = []

        def follow_watch():
            try:
                for update in watch:
                    later.append(update.status)
                later.append("ended")
            except grpc.RpcError as error:
                later.append(error.code())

        follower = threading.Thread(target=follow_watch, daemon=True)
        follower.start()

        in_flight = echo.Get.future(pb.EchoRequest(text="in flight", delay_ms=1000), timeout=30)
        time.sleep(0.2)
        server.expect_exit = True
        os.kill(server.pid, signal.SIGTERM)
        sent_at = time.monotonic()

        try:
            reply = in_flight.result(timeout=30)
        except grpc.RpcError as error:
            time.sleep(0.5)
            raise AssertionError(
                f"the in-flight call failed with {error.code()} ({error.details()}); server exit "
                f"status: {server.proc.poll()}\n{server.log_tail(15)}") from None
        assert reply.text == "in flight"
        follower.join(timeout=30)
        assert later, "the health Watch stream neither got an update nor ended"
        assert later[0] in (health_pb2.HealthCheckResponse.NOT_SERVING, "ended",
                            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), later

    returncode = server.proc.wait(timeout=max(0.1, 5 - (time.monotonic() - sent_at)))
    assert returncode == 0, server.log_tail()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=30).close()


# -- HTTP-level checks with h2 -------------------------------------------------------------


def _grpc_body(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def h2_exchange(port: int, headers, body: bytes | None = b"", timeout: float = 30.0):
    """One request on a fresh h2 connection; returns the events of stream 1 until it ends."""
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    events = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        connection.initiate_connection()
        connection.send_headers(1, headers, end_stream=body is None)
        if body is not None:
            connection.send_data(1, body, end_stream=True)
        sock.sendall(connection.data_to_send())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            for event in connection.receive_data(data):
                if getattr(event, "stream_id", 1) == 1 and not isinstance(event, (h2.events.SettingsAcknowledged,)):
                    events.append(event)
                if isinstance(event, h2.events.DataReceived):
                    connection.acknowledge_received_data(event.flow_controlled_length, 1)
            sock.sendall(connection.data_to_send())
            if any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) for e in events):
                break
    return events


def _request_headers(path, content_type="application/grpc", extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"),
            ("content-type", content_type), ("te", "trailers"), *extra]


def _of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_h2_non_grpc_content_type_is_415(echo_server, pb):
    # Neither gRPC nor Connect (application/json is Connect's: test_connect.py).
    body = _grpc_body(pb.EchoRequest(text="x").SerializeToString())
    events = h2_exchange(echo_server.port, _request_headers(f"{ECHO}/Get", content_type="text/html"), body)
    responses = _of(events, h2.events.ResponseReceived)
    assert responses, events
    assert dict(responses[0].headers)[":status"] == "415"
    assert not _of(events, h2.events.StreamReset) or _of(events, h2.events.StreamReset)[0].error_code == 0


def test_h2_missing_content_type_is_415(echo_server, pb):
    headers = [h for h in _request_headers(f"{ECHO}/Get") if h[0] != "content-type"]
    events = h2_exchange(echo_server.port, headers, _grpc_body(b""))
    responses = _of(events, h2.events.ResponseReceived)
    assert responses and dict(responses[0].headers)[":status"] == "415", events


def test_h2_gzip_encoding_unimplemented(echo_server, pb):
    body = _grpc_body(pb.EchoRequest(text="x").SerializeToString())
    events = h2_exchange(echo_server.port, _request_headers(f"{ECHO}/Get", extra=[("grpc-encoding", "gzip")]), body)
    headers = {}
    for event in _of(events, h2.events.ResponseReceived) + _of(events, h2.events.TrailersReceived):
        headers.update(dict(event.headers))
    assert headers.get(":status") == "200", events
    assert headers.get("grpc-status") == "12", headers
    assert "identity" in headers.get("grpc-accept-encoding", ""), headers


def test_h2_trailers_only_unknown_method(echo_server):
    events = h2_exchange(echo_server.port, _request_headers(f"{ECHO}/Missing"), _grpc_body(b""))
    responses = _of(events, h2.events.ResponseReceived)
    assert len(responses) == 1, events
    response = responses[0]
    # Trailers-Only: one HEADERS frame carrying END_STREAM, no DATA, no second HEADERS.
    assert response.stream_ended is not None, "the status HEADERS frame lacked END_STREAM"
    assert not _of(events, h2.events.DataReceived)
    assert not _of(events, h2.events.TrailersReceived)
    headers = dict(response.headers)
    assert headers[":status"] == "200"
    assert headers["content-type"].startswith("application/grpc")
    assert headers["grpc-status"] == "12"


def test_h2_normal_response_shape(echo_server, pb):
    body = _grpc_body(pb.EchoRequest(text="shape").SerializeToString())
    events = h2_exchange(echo_server.port, _request_headers(f"{ECHO}/Get"), body)
    response = _of(events, h2.events.ResponseReceived)
    assert len(response) == 1 and response[0].stream_ended is None, events
    assert dict(response[0].headers)[":status"] == "200"
    data = b"".join(e.data for e in _of(events, h2.events.DataReceived))
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == len(data) - 5
    assert pb.EchoResponse.FromString(data[5:]).text == "shape"
    trailers = _of(events, h2.events.TrailersReceived)
    assert len(trailers) == 1 and dict(trailers[0].headers)["grpc-status"] == "0"
    assert trailers[0].stream_ended is not None
