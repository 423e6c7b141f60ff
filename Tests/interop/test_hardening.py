"""Hostile HTTP/2 clients against stb-echo-server (the attack table of grpc-http2.md §3).

Frames are written with hyperframe (and HPACK by hand where needed) onto raw sockets,
because h2's state machine refuses most illegal sequences. After every attack the server
must still be running and a well-behaved grpcio client on a new connection must get a
correct unary reply within 2 s; where memory is at stake, RSS growth is bounded.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import time

import hpack
import pytest
from hyperframe.exceptions import UnknownFrameError
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ECHO = "/stb.testing.v1.Echo"
MAX_FRAME = 16384
MAX_RSS_GROWTH_MIB = 200

# HTTP/2 error codes (RFC 9113 §7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0x5, 0x7, 0x8, 0xB

# Linux TCP states (tcp_info.tcpi_state).
TCP_ESTABLISHED, TCP_CLOSE, TCP_CLOSE_WAIT = 1, 7, 8


# -- raw HTTP/2 client -----------------------------------------------------------------------


class RawH2:
    """A raw HTTP/2 connection: writes whatever it is given, parses what comes back."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 24
        self.frames: list[Frame] = []
        self.closed = False
        self.send_blocked = False
        self._buffer = bytearray()
        self._cursor = 0
        self._block: tuple[HeadersFrame, bytearray] | None = None
        self.server_settings: dict | None = None
        self._connection_sent = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # sending

    def send(self, *items) -> bool:
        """Sends frames and/or bytes; False if the server closed the connection (or stopped reading)."""
        data = b"".join(item.serialize() if isinstance(item, Frame) else bytes(item) for item in _flatten(items))
        try:
            self.sock.sendall(data)
            return True
        except socket.timeout:
            self.send_blocked = True
            return False
        except OSError:  # EPIPE, ECONNRESET: the server closed the connection
            self.closed = True
            return False

    def send_data_flow_controlled(self, stream_id: int, data: bytes, end_stream: bool = True,
                                  timeout: float = 20.0) -> bool:
        """Sends DATA within the server's flow-control windows, waiting for WINDOW_UPDATEs."""
        deadline = time.monotonic() + timeout
        sent = 0
        while True:
            updates = [f for f in self.frames if isinstance(f, WindowUpdateFrame)]
            connection_window = 65535 + sum(f.window_increment for f in updates if f.stream_id == 0) \
                - self._connection_sent
            stream_window = self.server_settings.get(SettingsFrame.INITIAL_WINDOW_SIZE, 65535) \
                + sum(f.window_increment for f in updates if f.stream_id == stream_id) - sent
            size = min(connection_window, stream_window, MAX_FRAME, len(data) - sent)
            if size > 0 or (sent == len(data)):
                last = sent + size == len(data)
                flags = ["END_STREAM"] if last and end_stream else []
                frame = DataFrame(stream_id, data=data[sent:sent + size], flags=flags)
                if not self.send(frame):
                    return False
                sent += size
                self._connection_sent += size
                if last:
                    return True
            elif self.next_frame(deadline - time.monotonic()) is None:
                return False

    def handshake(self, settings: dict | None = None, ack: bool = True, timeout: float = 20.0):
        """Preface + SETTINGS; waits for the server's SETTINGS and (optionally) acknowledges it."""
        self.send(PREFACE, SettingsFrame(0, settings=settings or {}))
        frame = self.read_until(lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags, timeout)
        assert frame is not None, "no SETTINGS from the server"
        self.server_settings = dict(frame.settings)
        if ack:
            self.send(SettingsFrame(0, flags=["ACK"]))
        return self.server_settings

    # receiving

    def _receive(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if self.closed or remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        except OSError:
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        self._buffer += data
        self._parse()
        return True

    def _parse(self):
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                return
            header, body = bytes(self._buffer[:9]), bytes(self._buffer[9:9 + length])
            del self._buffer[:9 + length]
            try:
                frame, _ = Frame.parse_frame_header(memoryview(header))
            except UnknownFrameError:
                continue
            frame.parse_body(memoryview(body))
            self._decode_block(frame)
            self.frames.append(frame)

    def _decode_block(self, frame: Frame):
        if isinstance(frame, HeadersFrame):
            self._block = (frame, bytearray(frame.data))
        elif isinstance(frame, ContinuationFrame) and self._block:
            self._block[1].extend(frame.data)
        else:
            return
        if "END_HEADERS" in frame.flags:
            headers_frame, block = self._block
            headers_frame.headers = dict(self.decoder.decode(bytes(block)))
            self._block = None

    def next_frame(self, timeout: float) -> Frame | None:
        deadline = time.monotonic() + timeout
        while self._cursor >= len(self.frames):
            if not self._receive(deadline):
                return None
        self._cursor += 1
        return self.frames[self._cursor - 1]

    def read_until(self, predicate, timeout: float) -> Frame | None:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.next_frame(max(0.0, deadline - time.monotonic()))
            if frame is None:
                return None
            if predicate(frame):
                return frame

    def drain(self, timeout: float = 0.0):
        """Reads whatever arrives within `timeout` (0: only what is already there)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._receive(deadline if timeout else time.monotonic() + 0.001):
                return

    def wait_closed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._receive(deadline)
        return self.closed

    # looking at what came back

    def goaway(self) -> GoAwayFrame | None:
        return next((f for f in self.frames if isinstance(f, GoAwayFrame)), None)

    def resets(self, stream_id: int | None = None) -> list[RstStreamFrame]:
        return [f for f in self.frames if isinstance(f, RstStreamFrame)
                and (stream_id is None or f.stream_id == stream_id)]

    def stream_headers(self, stream_id: int) -> list[HeadersFrame]:
        return [f for f in self.frames if isinstance(f, HeadersFrame) and f.stream_id == stream_id]

    def stream_data(self, stream_id: int) -> bytes:
        return b"".join(f.data for f in self.frames if isinstance(f, DataFrame) and f.stream_id == stream_id)

    def grpc_status(self, stream_id: int) -> str | None:
        for frame in self.stream_headers(stream_id):
            status = getattr(frame, "headers", {}).get("grpc-status")
            if status is not None:
                return status
        return None

    def stream_ended(self, stream_id: int) -> bool:
        return bool(self.resets(stream_id)) or any(
            "END_STREAM" in f.flags for f in self.frames
            if isinstance(f, (HeadersFrame, DataFrame)) and f.stream_id == stream_id)

    def tcp_state(self) -> int:
        """The kernel's TCP state of this socket, without reading from it."""
        return self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]

    def server_side_tcp_state(self) -> int | None:
        """The TCP state of the server's end of this connection (None once it is gone)."""
        local_port = self.sock.getsockname()[1]
        server_port = self.sock.getpeername()[1]
        with open("/proc/net/tcp") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                local, remote, state = fields[1], fields[2], fields[3]
                if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == local_port:
                    return int(state, 16)
        return None

    def closed_by_server_without_reading(self) -> bool:
        """True once the server has closed its socket, even if its FIN is stuck behind
        unread data (the server's end leaves ESTABLISHED) or it reset the connection."""
        return self.tcp_state() in (TCP_CLOSE, TCP_CLOSE_WAIT) or self.server_side_tcp_state() != TCP_ESTABLISHED

    def wait_closed_without_reading(self, timeout: float) -> bool:
        return wait_for(self.closed_by_server_without_reading, timeout)


def _flatten(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        else:
            yield item


# -- frame builders ---------------------------------------------------------------------------


def request_headers(path: str, content_type: str = "application/grpc", extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"),
            ("content-type", content_type), ("te", "trailers"), *extra]


def headers_frame(stream_id: int, block: bytes, end_stream: bool = False, end_headers: bool = True) -> HeadersFrame:
    frame = HeadersFrame(stream_id, data=block)
    if end_headers:
        frame.flags.add("END_HEADERS")
    if end_stream:
        frame.flags.add("END_STREAM")
    return frame


def data_frames(stream_id: int, data: bytes, end_stream: bool = False) -> list[DataFrame]:
    chunks = [data[i:i + MAX_FRAME] for i in range(0, len(data), MAX_FRAME)] or [b""]
    frames = [DataFrame(stream_id, data=chunk) for chunk in chunks]
    if end_stream:
        frames[-1].flags.add("END_STREAM")
    return frames


def grpc_message(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def call_frames(conn: RawH2, stream_id: int, path: str, message: bytes, end_stream: bool = True):
    """HEADERS + DATA of one well-formed gRPC request."""
    block = conn.encoder.encode(request_headers(path))
    return [headers_frame(stream_id, block), *data_frames(stream_id, grpc_message(message), end_stream)]


def hpack_int(value: int, prefix_bits: int, first_byte_flags: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = bytearray([first_byte_flags | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(text: bytes) -> bytes:
    return hpack_int(len(text), 7) + text  # no Huffman


def hpack_literal(name: str, value: bytes | str, index: bool = False) -> bytes:
    """Literal field with a new name, with (0x40) or without (0x00) incremental indexing."""
    value = value.encode() if isinstance(value, str) else value
    return bytes([0x40 if index else 0x00]) + hpack_string(name.encode()) + hpack_string(value)


def hpack_indexed(index: int) -> bytes:
    return hpack_int(index, 7, 0x80)


def manual_request_block(path: str, extra: bytes = b"") -> bytes:
    """A request header block that leaves the HPACK dynamic table untouched."""
    return b"".join(hpack_literal(name, value) for name, value in request_headers(path)) + extra


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def pb(stubs):
    return stubs.pb2


def echo_request(pb, **fields) -> bytes:
    return pb.EchoRequest(**fields).SerializeToString()


def assert_rss_bounded(rss, server):
    assert rss.growth_mib < MAX_RSS_GROWTH_MIB, (
        f"server RSS grew by {rss.growth_mib:.0f} MiB (from {rss.baseline_kib} KiB to {rss.peak_kib} KiB)\n"
        f"{server.log_tail()}")


def open_fds(server) -> int:
    return len(os.listdir(f"/proc/{server.pid}/fd"))


class ServerCrashed(AssertionError):
    """The server process died (or its crash handler is running) after an attack."""


def server_crashed(server, wait: float = 0.0) -> bool:
    deadline = time.monotonic() + wait
    while True:
        if not server.alive() or "Program crashed" in server.log_path.read_text(errors="replace"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def assert_survived(server, control_call):
    """(a) the server is alive and (b) a grpcio client on a new connection gets a correct
    unary reply within 20 s. A dead server raises ServerCrashed."""
    try:
        control_call(server)
    except AssertionError as error:
        if server_crashed(server, wait=2.0):
            raise ServerCrashed(f"the server crashed\n{server.log_tail()}") from error
        raise
    if server_crashed(server):
        raise ServerCrashed(f"the server crashed\n{server.log_tail()}")


@pytest.fixture
def fresh_server(start_server):
    """A default server of the test's own, for attacks that may take it down."""
    return start_server()


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# -- 12. sanity --------------------------------------------------------------------------------


def test_sanity_valid_request(echo_server, pb, control_call):
    with RawH2(echo_server.port) as conn:
        settings = conn.handshake()
        assert settings.get(SettingsFrame.MAX_CONCURRENT_STREAMS) == 100
        conn.send(call_frames(conn, 1, f"{ECHO}/Get", echo_request(pb, text="raw", payload=b"\x00\xff")))
        assert conn.read_until(lambda f: conn.stream_ended(1), 3) is not None, conn.frames
        headers = conn.stream_headers(1)
        assert len(headers) == 2, headers
        first, trailers = headers
        assert first.headers[":status"] == "200"
        assert first.headers["content-type"].startswith("application/grpc")
        assert "END_STREAM" not in first.flags
        assert trailers.headers["grpc-status"] == "0"
        assert "END_STREAM" in trailers.flags
        data = conn.stream_data(1)
        assert data[0] == 0 and int.from_bytes(data[1:5], "big") == len(data) - 5
        reply = pb.EchoResponse.FromString(data[5:])
        assert (reply.text, reply.payload) == ("raw", b"\x00\xff")
        # Frame order on the stream: HEADERS, DATA..., trailers.
        order = [type(f).__name__ for f in conn.frames if f.stream_id == 1 and isinstance(f, (HeadersFrame, DataFrame))]
        assert order[0] == "HeadersFrame" and order[-1] == "HeadersFrame" and set(order[1:-1]) == {"DataFrame"}
        assert not conn.resets(1)
    assert_survived(echo_server, control_call)


def test_large_response_to_quiet_client(echo_server, pb, control_call):
    payload = os.urandom(3 * 1024 * 1024)
    with RawH2(echo_server.port) as conn:
        conn.handshake(settings={SettingsFrame.INITIAL_WINDOW_SIZE: 2**31 - 1})
        conn.send(WindowUpdateFrame(0, window_increment=2**31 - 1 - 65535))
        block = conn.encoder.encode(request_headers(f"{ECHO}/Get"))
        conn.send(headers_frame(1, block))
        assert conn.send_data_flow_controlled(1, grpc_message(echo_request(pb, payload=payload)))
        # From here on the client only reads (its windows are wide open).
        conn.read_until(lambda f: conn.stream_ended(1), 3)
        received = len(conn.stream_data(1))
        assert conn.grpc_status(1) == "0", f"response stalled after {received} bytes of DATA"
        assert pb.EchoResponse.FromString(conn.stream_data(1)[5:]).payload == payload
    assert_survived(echo_server, control_call)


# -- 1. rapid reset --------------------------------------------------------------------------


def test_rapid_reset(rss_sampler, echo_server, pb, control_call):
    total = 10_000
    message = echo_request(pb, text="rr", delay_ms=500)
    with RawH2(echo_server.port) as conn, rss_sampler(echo_server) as rss:
        conn.handshake()
        sent = 0
        batch = []
        for i in range(total):
            stream_id = 2 * i + 1
            batch += call_frames(conn, stream_id, f"{ECHO}/Get", message)
            batch.append(RstStreamFrame(stream_id, error_code=CANCEL))
            if len(batch) >= 3 * 250 or i == total - 1:
                if not conn.send(batch):
                    break
                sent = i + 1
                batch = []
                conn.drain()
                if conn.goaway() or conn.closed:
                    break
        conn.wait_closed(timeout=20)
        goaway = conn.goaway()
        assert goaway is not None or conn.closed, "rapid reset neither got GOAWAY nor ended the connection"
        if goaway is not None:
            assert goaway.error_code != NO_ERROR, goaway
            assert goaway.last_stream_id < 2 * total - 1, "GOAWAY only after every stream was processed"
        assert conn.closed, f"connection still open after GOAWAY {goaway}"
    print(f"rapid reset: sent {sent} streams, GOAWAY {goaway and (goaway.error_code, goaway.last_stream_id)}")
    assert_rss_bounded(rss, echo_server)
    assert_survived(echo_server, control_call)


# -- 2. stream limit -------------------------------------------------------------------------


@pytest.mark.parametrize("ack_settings", [
    False,
    True,
], ids=["before-settings-ack", "after-settings-ack"])
def test_stream_limit(fresh_server, pb, control_call, ack_settings):
    server = fresh_server
    message = echo_request(pb, text="slow", delay_ms=1500)
    with RawH2(server.port) as conn:
        conn.handshake(ack=ack_settings)
        ids = [2 * i + 1 for i in range(101)]
        conn.send([call_frames(conn, stream_id, f"{ECHO}/Get", message) for stream_id in ids])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not conn.closed and not all(conn.stream_ended(s) for s in ids):
            conn.next_frame(deadline - time.monotonic())
        served = [s for s in ids if conn.grpc_status(s) == "0"]
        last = ids[-1]
        assert last not in served, "the 101st concurrent stream was served"
        assert len(served) <= 100
        refused = [r.error_code for r in conn.resets(last)]
        goaway = conn.goaway()
        if ack_settings:
            # Over the acknowledged limit: a connection error (nghttp2: PROTOCOL_ERROR).
            assert (goaway is not None and goaway.error_code == PROTOCOL_ERROR and goaway.last_stream_id < last) \
                or refused == [REFUSED_STREAM], (goaway, refused)
        else:
            # Over the announced but unacknowledged limit: that stream alone is refused.
            assert refused == [REFUSED_STREAM], (goaway, refused)
            assert goaway is None
            assert served == ids[:100], f"only {len(served)} of the first 100 streams were served"
    assert_survived(server, control_call)


def test_running_handler_cap(start_server, pb, control_call):
    server = start_server(STB_RPC_MAX_RUNNING_HANDLERS=5)
    message = echo_request(pb, text="slow", delay_ms=800)
    with RawH2(server.port) as conn:
        conn.handshake()
        ids = [2 * i + 1 for i in range(8)]
        conn.send([call_frames(conn, s, f"{ECHO}/Get", message) for s in ids])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(conn.stream_ended(s) for s in ids):
            conn.next_frame(deadline - time.monotonic())
        assert [conn.grpc_status(s) for s in ids[:5]] == ["0"] * 5
        for stream_id in ids[5:]:
            assert [r.error_code for r in conn.resets(stream_id)] == [REFUSED_STREAM]
            assert conn.grpc_status(stream_id) is None
    assert_survived(server, control_call)


def test_running_handler_cap_headers_first(start_server, pb, control_call):
    server = start_server(STB_RPC_MAX_RUNNING_HANDLERS=5)
    message = echo_request(pb, text="slow", delay_ms=800)
    with RawH2(server.port) as conn:
        conn.handshake()
        ids = [2 * i + 1 for i in range(8)]
        block = conn.encoder.encode(request_headers(f"{ECHO}/Get"))
        conn.send([headers_frame(s, block) for s in ids])
        conn.send([data_frames(s, grpc_message(message), end_stream=True) for s in ids])
        started = time.monotonic()
        deadline = started + 30
        while time.monotonic() < deadline and not all(conn.stream_ended(s) for s in ids):
            conn.next_frame(deadline - time.monotonic())
        elapsed = time.monotonic() - started
        served = [s for s in ids if conn.grpc_status(s) == "0"]
        assert len(served) <= 5, f"{len(served)} handlers of 800 ms ran within {elapsed:.2f}s with a cap of 5"
        for stream_id in ids:
            if stream_id not in served:
                assert [r.error_code for r in conn.resets(stream_id)] == [REFUSED_STREAM]
    assert_survived(server, control_call)


# -- 3. CONTINUATION flood ---------------------------------------------------------------------


def test_continuation_flood(echo_server, control_call):
    with RawH2(echo_server.port) as conn:
        conn.handshake()
        block = conn.encoder.encode(request_headers(f"{ECHO}/Get"))
        frames = [headers_frame(1, block, end_headers=False)]
        frames += [ContinuationFrame(1, data=b"") for _ in range(100)]
        conn.send(frames)
        assert conn.wait_closed(timeout=20), "connection still open after 100 CONTINUATION frames"
        assert not conn.stream_headers(1)
    assert_survived(echo_server, control_call)


# -- 4. slow headers ---------------------------------------------------------------------------


@pytest.mark.parametrize("dribble", [False, True], ids=["silence", "dribbled-continuations"])
def test_slow_headers(start_server, control_call, dribble):
    server = start_server(STB_RPC_HEADER_TIMEOUT_MS=1000)
    with RawH2(server.port) as conn:
        conn.handshake()
        block = conn.encoder.encode(request_headers(f"{ECHO}/Get"))
        conn.send(headers_frame(1, block[:-1] if dribble else block, end_headers=False))
        started = time.monotonic()
        if dribble:
            # A few empty CONTINUATIONs (under nghttp2's 8) must not restart the header timer.
            for _ in range(6):
                if conn.wait_closed(0.3):
                    break
                conn.send(ContinuationFrame(1, data=b""))
        # The 1 s header timeout, or more on a loaded machine; never closing is the failure.
        assert conn.wait_closed(timeout=15 - (time.monotonic() - started)), "header timeout did not close"
        elapsed = time.monotonic() - started
        assert 0.7 < elapsed < 15, elapsed
        goaway = conn.goaway()
        if goaway is not None:
            assert goaway.error_code == PROTOCOL_ERROR and goaway.additional_data == b"header_timeout", goaway
    assert_survived(server, control_call)


# -- 5. HPACK bomb -----------------------------------------------------------------------------


def test_hpack_bomb(rss_sampler, echo_server, control_call):
    bomb_value = b"b" * 4000  # entry size 6 + 4000 + 32 fits the default 4096-byte table
    references = hpack_indexed(62) * 16_000  # ≈ 64 MB once decoded
    streams = 20
    with RawH2(echo_server.port) as conn, rss_sampler(echo_server) as rss:
        conn.handshake()
        for n in range(streams):
            stream_id = 2 * n + 1
            insert = hpack_literal("x-bomb", bomb_value, index=True) if n == 0 else b""
            block = manual_request_block(f"{ECHO}/Get", insert + references)
            chunks = [block[i:i + MAX_FRAME] for i in range(0, len(block), MAX_FRAME)]
            frames = [headers_frame(stream_id, chunks[0], end_headers=len(chunks) == 1)]
            frames += [ContinuationFrame(stream_id, data=c) for c in chunks[1:]]
            frames[-1].flags.add("END_HEADERS")
            if not conn.send(frames):
                break
            conn.read_until(lambda f: conn.stream_ended(stream_id), 2)
            if conn.closed:
                break
        conn.drain(0.2)
        for n in range(streams):
            stream_id = 2 * n + 1
            assert conn.grpc_status(stream_id) is None, f"stream {stream_id} was answered"
            assert conn.resets(stream_id) or conn.closed, f"stream {stream_id} neither reset nor connection closed"
        codes = {r.error_code for r in conn.resets()}
        print(f"HPACK bomb: reset codes {codes}, closed={conn.closed}, goaway={conn.goaway()}")
        if not conn.closed:
            # Stream-level: the header budget reset each stream, and the connection still works
            # (a block that leaves the HPACK dynamic table alone keeps both sides in step).
            assert all(conn.resets(2 * n + 1)[0].error_code == ENHANCE_YOUR_CALM for n in range(streams)), codes
            next_id = 2 * streams + 1
            conn.send(headers_frame(next_id, manual_request_block(f"{ECHO}/Get")),
                      data_frames(next_id, grpc_message(b"\x0a\x02ok"), end_stream=True))
            assert conn.read_until(lambda f: conn.stream_ended(next_id), 3) is not None
            assert conn.grpc_status(next_id) == "0"
    assert_rss_bounded(rss, echo_server)
    assert rss.growth_mib < 50, f"RSS grew {rss.growth_mib:.0f} MiB decoding an HPACK bomb"
    assert_survived(echo_server, control_call)


@pytest.mark.parametrize("kind", ["too-many-fields", "too-many-bytes"])
def test_header_budget(echo_server, pb, control_call, kind):
    with RawH2(echo_server.port) as conn:
        conn.handshake()
        if kind == "too-many-fields":
            extra = [(f"x-field-{i}", "v") for i in range(101)]
        else:
            extra = [(f"x-big-{i}", "v" * 4000) for i in range(5)]
        block = b"".join(hpack_literal(n, v) for n, v in request_headers(f"{ECHO}/Get", extra=extra))
        chunks = [block[i:i + MAX_FRAME] for i in range(0, len(block), MAX_FRAME)]
        frames = [headers_frame(1, chunks[0], end_headers=len(chunks) == 1)]
        frames += [ContinuationFrame(1, data=c) for c in chunks[1:]]
        frames[-1].flags.add("END_HEADERS")
        conn.send(frames, data_frames(1, grpc_message(echo_request(pb, text="x")), end_stream=True))
        assert conn.read_until(lambda f: conn.stream_ended(1), 3) is not None, conn.frames
        assert conn.grpc_status(1) is None
        assert [r.error_code for r in conn.resets(1)][:1] == [ENHANCE_YOUR_CALM]
        # The connection survives a stream-level breach.
        conn.send(call_frames(conn, 3, f"{ECHO}/Get", echo_request(pb, text="next")))
        assert conn.read_until(lambda f: conn.stream_ended(3), 3) is not None
        assert conn.grpc_status(3) == "0"
    assert_survived(echo_server, control_call)


# -- 6. oversized message ----------------------------------------------------------------------


@pytest.mark.parametrize("prefix,expected", [
    (b"\x00\xff\xff\xff\xff", "8"),
    (b"\x00" + struct.pack(">I", 4 * 1024 * 1024 + 1), "8"),
    (b"\x01\x00\x00\x00\x03", "13"),  # compressed flag without grpc-encoding
], ids=["4GiB-prefix", "limit-plus-one", "compressed-without-encoding"])
def test_oversized_message_prefix(rss_sampler, echo_server, control_call, prefix, expected):
    streams = 50
    with RawH2(echo_server.port) as conn, rss_sampler(echo_server) as rss:
        conn.handshake()
        block = conn.encoder.encode(request_headers(f"{ECHO}/Get"))
        ids = [2 * i + 1 for i in range(streams)]
        conn.send([[headers_frame(s, block), DataFrame(s, data=prefix + b"abc")] for s in ids])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(conn.stream_ended(s) for s in ids):
            conn.next_frame(deadline - time.monotonic())
        statuses = [conn.grpc_status(s) for s in ids]
        assert statuses == [expected] * streams, statuses
        # Trailers-Only, and the client is told to stop sending (RST_STREAM NO_ERROR at most).
        for s in ids:
            assert all(r.error_code == NO_ERROR for r in conn.resets(s))
        assert not conn.closed
    assert rss.growth_mib < 50, f"RSS grew {rss.growth_mib:.0f} MiB"
    assert_survived(echo_server, control_call)


# -- 7. PING flood -----------------------------------------------------------------------------


def test_ping_flood_with_active_call(start_server, pb, control_call):
    server = start_server(STB_RPC_MIN_PING_INTERVAL_MS=60000)
    with RawH2(server.port) as conn:
        conn.handshake()
        conn.send(call_frames(conn, 1, f"{ECHO}/Get", echo_request(pb, text="slow", delay_ms=10000)))
        pings = 0
        for n in range(100):
            if not conn.send(PingFrame(0, opaque_data=struct.pack(">Q", n))):
                break
            pings += 1
            conn.read_until(lambda f: isinstance(f, (PingFrame, GoAwayFrame)), 10)
            if conn.goaway() is not None or conn.closed:
                break
        goaway = conn.goaway() or conn.read_until(lambda f: isinstance(f, GoAwayFrame), 20)
        assert goaway is not None, f"no GOAWAY after {pings} PINGs"
        assert goaway.error_code == ENHANCE_YOUR_CALM
        assert goaway.additional_data == b"too_many_pings"
        assert pings <= 4, f"GOAWAY only after {pings} PINGs (more than 2 strikes allowed)"
        assert conn.wait_closed(20)
        assert conn.grpc_status(1) is None
    assert_survived(server, control_call)


def test_pings_forgiven_by_responses(start_server, pb, control_call):
    """Pings are strikes only while the server sends nothing: answering calls resets them."""
    server = start_server(STB_RPC_MIN_PING_INTERVAL_MS=60000)
    with RawH2(server.port) as conn:
        conn.handshake()
        for round_ in range(10):
            stream_id = 2 * round_ + 1
            for n in range(2):
                conn.send(PingFrame(0, opaque_data=struct.pack(">Q", n)))
                assert conn.read_until(lambda f: isinstance(f, PingFrame) and "ACK" in f.flags, 20)
            conn.send(call_frames(conn, stream_id, f"{ECHO}/Get", echo_request(pb, text="ok")))
            assert conn.read_until(lambda f: conn.stream_ended(stream_id), 20) is not None
            assert conn.grpc_status(stream_id) == "0"
        assert conn.goaway() is None and not conn.closed
    assert_survived(server, control_call)


def test_ping_flood_without_reading(rss_sampler, echo_server, control_call):
    ping = PingFrame(0, opaque_data=b"floodfld").serialize()
    with RawH2(echo_server.port) as conn, rss_sampler(echo_server) as rss:
        conn.send(PREFACE, SettingsFrame(0))
        for _ in range(10):  # 100k PINGs in 10 writes, nothing read meanwhile
            if not conn.send(ping * 10_000):
                break
        assert conn.wait_closed(timeout=20), "connection still open after 100k PINGs"
    assert_rss_bounded(rss, echo_server)
    assert_survived(echo_server, control_call)


# -- 8. SETTINGS flood -------------------------------------------------------------------------


def test_settings_flood_without_reading(rss_sampler, echo_server, control_call):
    settings = SettingsFrame(0).serialize()
    with RawH2(echo_server.port) as conn, rss_sampler(echo_server) as rss:
        conn.send(PREFACE)
        for _ in range(10):  # 100k SETTINGS, each owed an ACK
            if not conn.send(settings * 10_000):
                break
        assert conn.wait_closed(timeout=20), "connection still open after 100k SETTINGS"
    assert_rss_bounded(rss, echo_server)
    assert_survived(echo_server, control_call)


def test_settings_with_too_many_entries(echo_server, control_call):
    payload = b"".join(struct.pack(">HI", SettingsFrame.MAX_FRAME_SIZE, 16384) for _ in range(40))
    frame = struct.pack(">I", len(payload))[1:] + bytes([0x4, 0x0]) + struct.pack(">I", 0) + payload
    with RawH2(echo_server.port) as conn:
        conn.send(PREFACE, frame)
        assert conn.wait_closed(timeout=20), "a SETTINGS frame with 40 entries was accepted"
        goaway = conn.goaway()
        assert goaway is None or goaway.error_code != NO_ERROR
    assert_survived(echo_server, control_call)


# -- 9. slow reader / zero window --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["zero-window", "unread-socket"])
def test_slow_reader(rss_sampler, start_server, pb, control_call, mode):
    server = start_server(STB_RPC_WRITE_STALL_TIMEOUT_MS=2000)
    message = echo_request(pb, text="flood", payload=os.urandom(64 * 1024), count=100_000)
    with RawH2(server.port) as conn, rss_sampler(server) as rss:
        if mode == "zero-window":
            conn.handshake(settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
        else:
            conn.handshake(settings={SettingsFrame.INITIAL_WINDOW_SIZE: 2**31 - 1})
            conn.send(WindowUpdateFrame(0, window_increment=2**31 - 1 - 65535))
        started = time.monotonic()
        for n in range(50):
            conn.send(call_frames(conn, 2 * n + 1, f"{ECHO}/Expand", message))
        # From here on nothing is read and no WINDOW_UPDATE is sent.
        closed = conn.wait_closed_without_reading(timeout=30)
        elapsed = time.monotonic() - started
        assert closed, f"connection of a reader that never reads still open after {elapsed:.1f}s"
        assert 1.5 < elapsed < 15, f"closed after {elapsed:.1f}s; the write-stall timeout is 2s"
    print(f"slow reader ({mode}): closed after {elapsed:.1f}s, RSS +{rss.growth_mib:.1f} MiB")
    assert_rss_bounded(rss, server)
    assert_survived(server, control_call)


# -- 10. MadeYouReset --------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [
    "data-after-end-stream",
    "content-length-overflow",
    "window-update-zero",
])
def test_made_you_reset(rss_sampler, fresh_server, pb, control_call, variant):
    """Requests the server must reset because of a client protocol error, 3000 times.

    nghttp2 1.52 answers DATA after END_STREAM and a zero WINDOW_UPDATE with a connection
    error at once; a body longer than its content-length is a stream error (RST_STREAM
    PROTOCOL_ERROR, with a handler already running for Collect), which only the server's
    glitch budget stops."""
    server = fresh_server
    total, batch_size = 3000, 50
    message = grpc_message(echo_request(pb, text="myr", delay_ms=1000))
    processed = 0
    with RawH2(server.port) as conn, rss_sampler(server) as rss:
        conn.handshake()
        if variant == "content-length-overflow":
            block = conn.encoder.encode(request_headers(f"{ECHO}/Collect", extra=[("content-length", "3")]))
        else:
            block = conn.encoder.encode(request_headers(f"{ECHO}/Get"))
        started = time.monotonic()
        for first in range(0, total, batch_size):
            ids = [2 * (first + i) + 1 for i in range(batch_size)]
            frames = []
            for s in ids:
                if variant == "data-after-end-stream":
                    frames += [headers_frame(s, block, end_stream=True), DataFrame(s, data=message)]
                elif variant == "content-length-overflow":
                    frames += [headers_frame(s, block), DataFrame(s, data=message, flags=["END_STREAM"])]
                else:
                    frames += [headers_frame(s, block), DataFrame(s, data=message, flags=["END_STREAM"]),
                               WindowUpdateFrame(s, window_increment=0)]
            if not conn.send(frames):
                break
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not conn.closed and conn.goaway() is None \
                    and not all(conn.stream_ended(s) for s in ids):
                conn.next_frame(deadline - time.monotonic())
            processed = first + batch_size
            if conn.closed or conn.goaway() is not None or time.monotonic() - started > 20:
                break
        conn.wait_closed(timeout=20)
        goaway = conn.goaway()
        print(f"MadeYouReset ({variant}): {processed} streams, "
              f"goaway={goaway and (goaway.error_code, goaway.last_stream_id, goaway.additional_data)}, "
              f"closed={conn.closed}, resets={sorted({r.error_code for r in conn.resets()})}")
        assert (goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM) or conn.closed, \
            f"{processed} streams reset by the server without GOAWAY or close"
        assert processed < total, "every stream was processed before the server reacted"
        assert not any(conn.grpc_status(2 * i + 1) == "0" for i in range(processed))
        if variant == "content-length-overflow":
            assert {r.error_code for r in conn.resets()} == {PROTOCOL_ERROR}
            assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM, goaway
            assert goaway.additional_data == b"too_many_glitches"
            assert 1000 <= len(conn.resets()) < 2000, f"{len(conn.resets())} resets before GOAWAY (burst 1000)"
    assert_rss_bounded(rss, server)
    assert_survived(server, control_call)


# -- disconnects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [
    "Get",
    "Expand",
    # Client- and bidi-streaming calls survive: their request queue's credit closure holds
    # the connection strongly.
    "Update",
])
def test_disconnect_with_running_handler(fresh_server, pb, control_call, method):
    """The plainest case: the client goes away while its call's handler is sleeping."""
    server = fresh_server
    with RawH2(server.port) as conn:
        conn.handshake()
        conn.send(call_frames(conn, 1, f"{ECHO}/{method}", echo_request(pb, text="x", delay_ms=1000, count=5)))
        time.sleep(0.2)
    # The socket is closed; the server cancels the handler.
    time.sleep(0.3)
    assert_survived(server, control_call)


def test_disconnect_after_handler_finished(fresh_server, pb, control_call):
    server = fresh_server
    for _ in range(20):
        with RawH2(server.port) as conn:
            conn.handshake()
            conn.send(call_frames(conn, 1, f"{ECHO}/Get", echo_request(pb, text="x")))
            assert conn.read_until(lambda f: conn.stream_ended(1), 20) is not None
            assert conn.grpc_status(1) == "0"
    time.sleep(0.2)
    assert_survived(server, control_call)


# -- 11. half-open connections -----------------------------------------------------------------


def test_half_open_connections(start_server, control_call):
    server = start_server(STB_RPC_HANDSHAKE_TIMEOUT_MS=1000)
    fds_before = open_fds(server)
    count = 500
    selector = selectors.DefaultSelector()
    socks = []
    try:
        opened_at: dict[int, float] = {}
        for n in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
            opened_at[n] = time.monotonic()
            if n % 5 == 0:
                sock.sendall(PREFACE[:10])  # a partial preface, then nothing
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, n)
            socks.append(sock)
        lifetimes: dict[int, float] = {}
        deadline = time.monotonic() + 30
        while len(lifetimes) < count and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    data = key.fileobj.recv(65536)  # the server's SETTINGS, then EOF
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    lifetimes[key.data] = time.monotonic() - opened_at[key.data]
                    selector.unregister(key.fileobj)
        assert len(lifetimes) == count, f"{count - len(lifetimes)} of {count} idle connections still open"
        shortest, longest = min(lifetimes.values()), max(lifetimes.values())
        print(f"half-open: all {count} closed after {shortest:.2f}s to {longest:.2f}s")
        assert longest < 15, f"an idle connection lived {longest:.2f}s; the handshake timeout is 1s"
        assert shortest > 0.5, "connections closed before the handshake timeout"
    finally:
        selector.close()
        for sock in socks:
            sock.close()
    assert wait_for(lambda: open_fds(server) <= fds_before + 2, 20), (
        f"server fds: {fds_before} before, {open_fds(server)} after")
    assert_survived(server, control_call)
