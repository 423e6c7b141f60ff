"""Two gatewayd instances of one deployment (one database) behind the edge
(scripts/edge with STB_GATEWAY_ADDR listing both), and access tokens that expire while a
stream runs, through a stock grpcio client against real catalogd, rulesd, projectd and
gatewayd processes on fresh databases.

Gateway A is the one the other services fetch keys from and users sign in at; gateway B
issues access tokens that live ACCESS_TTL seconds (GATEWAY_ACCESS_TTL_SECONDS), for the
expiry test. Either gateway honours a resume token of the other: a token names each
upstream's own cursor and the deployment's epoch, nothing local to one process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import grpc
import pytest

from conftest import HOST, _free_port
from test_edge import Edge
from test_realtime import (platform_databases, ADMIN, ADMIN_PASSWORD, TIMEOUT, Platform, Server, Stream, binary, create_modules,
                           kinds, md, pb, token_positions)

pytestmark = [
    pytest.mark.skipif(
        not (os.environ.get("STB_GATEWAYD_BIN") and os.environ.get("STB_CATALOGD_BIN") and os.environ.get("STB_RULESD_BIN")),
        reason="STB_GATEWAYD_BIN, STB_CATALOGD_BIN and STB_RULESD_BIN must be set"),
    pytest.mark.skipif(not (shutil.which("nghttpx") and shutil.which("nghttpd")),
                       reason="nghttpx or nghttpd is not installed (scripts/install-deps)"),
]

ACCESS_TTL = 4
__all__ = ["pb"]  # the stubs fixture, shared with test_realtime


class Cluster(Platform):
    """The platform of test_realtime with a second gateway (B) on the same database."""

    def __init__(self, tmp, urls):
        super().__init__(tmp, urls)
        self.ports["gateway_b"] = _free_port()

    def instance_ids(self):
        out = subprocess.run(["psql", "-At", self.urls["gateway"], "-c", "SELECT id FROM realtime_instances"],
                             capture_output=True, text=True, check=True)
        return set(out.stdout.split())

    def recording_instance(self, name, start):
        """Runs `start` and notes the instance id the new process registered."""
        before = self.instance_ids()
        start()
        new = self.instance_ids() - before
        assert len(new) == 1, new
        self.instances[name] = new.pop()

    def start_gateway(self, **overrides):
        if not hasattr(self, "instances"):
            self.instances = {}
        self.recording_instance("gateway", lambda: Platform.start_gateway(self, **overrides))

    def start_gateway_b(self):
        def start():
            self.servers["gateway_b"] = Server("gatewayd", binary("STB_GATEWAYD_BIN", "gatewayd"),
                                               self.tmp / f"gatewayd-b-{time.time_ns()}.log", {
                                                   **self.gateway_env(), "GATEWAY_PORT": str(self.ports["gateway_b"]),
                                                   "GATEWAY_ACCESS_TTL_SECONDS": str(ACCESS_TTL)}).start()
        self.recording_instance("gateway_b", start)

    def start(self):
        super().start()
        self.start_gateway_b()
        return self

    def stop(self):
        server = self.servers.get("gateway_b")
        if server and server.alive():
            server.terminate(timeout=15)
        super().stop()

    def instance_of_session(self, session_id):
        """'gateway' or 'gateway_b': which process runs a session."""
        out = subprocess.run(["psql", "-At", self.urls["gateway"], "-c",
                              f"SELECT instance FROM stream_sessions WHERE id = {int(session_id)}"],
                             capture_output=True, text=True, check=True)
        instance = out.stdout.strip()
        return next(name for name, known in self.instances.items() if known == instance)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("realtime-cluster")
    with platform_databases("rc") as urls:
        cluster = Cluster(tmp, urls).start()
        edge = None
        try:
            edge = Edge(tmp / "edge", cluster.addr("catalog"), cluster.addr("rules"),
                        STB_PROJECT_ADDR=cluster.addr("project"),
                        STB_GATEWAY_ADDR=f"{cluster.addr('gateway')},{cluster.addr('gateway_b')}").start()
            cluster.edge = edge
            yield cluster
        finally:
            if edge is not None:
                edge.terminate()
            cluster.stop()


def login(cluster, pb, name, password, at="gateway"):
    with grpc.insecure_channel(cluster.addr(at)) as channel:
        return pb.gateway_grpc.AuthStub(channel).Login(pb.gateway.LoginRequest(username=name, password=password),
                                                       timeout=TIMEOUT)


class EdgeStream(Stream):
    """A Subscribe call through the edge (h2c)."""

    def __init__(self, cluster, pb, token, topics, resume=""):
        self.channel = grpc.insecure_channel(f"{HOST}:{cluster.edge.http_port}")
        self.call = pb.rt_grpc.RealtimeStub(self.channel).Subscribe(
            pb.rt.SubscribeRequest(topics=topics, resume_token=resume), metadata=md(token))
        self.messages = []
        self.error = None
        import threading
        self.lock = threading.Condition()
        self.start()


def wait_error(stream, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while stream.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stream.error is not None, f"the stream did not end; got {kinds(stream.messages)}"
    return stream.error


def open_sessions(cluster, pb, token, at, count):
    """The open sessions listed at gateway `at`, once there are `count` of them (streams
    closed just before record their end as they stop)."""
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(cluster.addr(at)) as channel:
        while True:
            sessions = pb.rt_grpc.RealtimeStub(channel).ListSessions(
                pb.rt.ListSessionsRequest(open_only=True), metadata=md(token), timeout=TIMEOUT).sessions
            if len(sessions) == count or time.monotonic() > deadline:
                assert len(sessions) == count, sessions
                return sessions
            time.sleep(0.1)


def open_sessions_any(cluster, pb, token):
    with grpc.insecure_channel(cluster.addr("gateway_b")) as channel:
        return pb.rt_grpc.RealtimeStub(channel).ListSessions(
            pb.rt.ListSessionsRequest(open_only=True), metadata=md(token), timeout=TIMEOUT).sessions


def delta_keys(stream):
    return [d.key for d in stream.deltas()]


def test_the_edge_config_lists_both_gateways(cluster):
    conf = (cluster.tmp / "edge" / "nghttpx.conf").read_text()
    routes = [line for line in conf.splitlines() if line.startswith("backend=") and "/stb.gateway.v1.*" in line]
    assert [r.split(";")[0] for r in routes] == [f"backend={HOST},{cluster.ports['gateway']}",
                                                  f"backend={HOST},{cluster.ports['gateway_b']}"], routes


def test_a_stream_ends_unauthenticated_when_the_token_expires_and_resumes_with_a_fresh_one(cluster, pb):
    """The stream ends with UNAUTHENTICATED and the trailer `stb-resume-token` of its last
    message when the access token expires; a fresh token resumes it with nothing missed
    and nothing twice."""
    admin = login(cluster, pb, ADMIN, ADMIN_PASSWORD).access_token
    short = login(cluster, pb, ADMIN, ADMIN_PASSWORD, at="gateway_b")
    assert short.access_expires_at_ms - time.time() * 1000 <= (ACCESS_TTL + 1) * 1000
    started = time.monotonic()
    stream = Stream(cluster, pb, short.access_token, ["catalog"])
    try:
        stream.wait(lambda ms: "snapshot" in kinds(ms))
        before = create_modules(cluster, pb, admin, 3)
        stream.wait(lambda ms: len([k for k in kinds(ms) if k == "delta"]) >= 3)
        error = wait_error(stream, timeout=ACCESS_TTL + 30)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error
        assert "expired" in error.details()
        # Near the expiry, with room for a loaded machine; a stream that outlives its token is the failure.
        assert time.monotonic() - started <= ACCESS_TTL + 15
        trailer = dict(error.trailing_metadata() or ())
        assert trailer.get("stb-resume-token") == stream.last_token(), trailer
        assert delta_keys(stream) == before
    finally:
        stream.close()
    missed = create_modules(cluster, pb, admin, 4)
    fresh = login(cluster, pb, ADMIN, ADMIN_PASSWORD, at="gateway_b").access_token
    resumed = Stream(cluster, pb, fresh, ["catalog"], resume=trailer["stb-resume-token"])
    try:
        resumed.wait(lambda ms: len([k for k in kinds(ms) if k == "delta"]) >= len(missed))
        after = create_modules(cluster, pb, admin, 2)
        resumed.wait(lambda ms: len([k for k in kinds(ms) if k == "delta"]) >= len(missed) + 2)
        time.sleep(0.5)
        assert "snapshot" not in kinds(resumed.messages) and "resync_required" not in kinds(resumed.messages)
        assert delta_keys(resumed) == missed + after
    finally:
        resumed.close()


def test_a_stream_moves_to_the_other_gateway_behind_the_edge_with_nothing_lost(cluster, pb):
    """Subscribe through the edge; the gateway serving the stream is killed (SIGKILL);
    the client resumes through the edge with its last token, which reaches the other
    gateway; the deltas are every module created, once, in order."""
    admin = login(cluster, pb, ADMIN, ADMIN_PASSWORD).access_token
    stream = EdgeStream(cluster, pb, admin, ["catalog"])
    created, received = [], []
    try:
        stream.wait(lambda ms: "snapshot" in kinds(ms))
        created += create_modules(cluster, pb, admin, 3)
        stream.wait(lambda ms: len([k for k in kinds(ms) if k == "delta"]) >= 3)
        sessions = open_sessions(cluster, pb, admin, "gateway_b", 1)
        serving = cluster.instance_of_session(sessions[0].id)
        other = "gateway_b" if serving == "gateway" else "gateway"
        os.kill(cluster.servers[serving].proc.pid, signal.SIGKILL)
        cluster.servers[serving].proc.wait(timeout=10)
        wait_error(stream)
        received += delta_keys(stream)
        token = stream.last_token()
    finally:
        stream.close()
    try:
        created += create_modules(cluster, pb, admin, 5)
        # The edge may still try the dead gateway once: a client retries, as stbctl does.
        deadline = time.monotonic() + 30
        while True:
            resumed = EdgeStream(cluster, pb, admin, ["catalog"], resume=token)
            try:
                resumed.wait(lambda ms: len([k for k in kinds(ms) if k == "delta"]) >= 5 or resumed.error is not None)
            except AssertionError:
                pass
            if resumed.error is None:
                break
            resumed.close()
            assert resumed.error.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline, resumed.error
            time.sleep(0.2)
        try:
            created += create_modules(cluster, pb, admin, 2)
            resumed.wait(lambda ms: len([k for k in kinds(ms) if k == "delta"]) >= 7)
            time.sleep(0.5)
            assert "snapshot" not in kinds(resumed.messages) and "resync_required" not in kinds(resumed.messages)
            received += delta_keys(resumed)
            # The killed gateway's session stays open until its instance is seen no more.
            mine = max(open_sessions(cluster, pb, admin, other, 2), key=lambda s: s.id)
            assert cluster.instance_of_session(mine.id) == other
        finally:
            resumed.close()
        assert received == created
    finally:
        # Back to two gateways for the tests after this one.
        if serving == "gateway":
            cluster.start_gateway()
        else:
            cluster.start_gateway_b()


def test_end_session_ends_a_stream_running_on_the_other_gateway(cluster, pb):
    admin = login(cluster, pb, ADMIN, ADMIN_PASSWORD).access_token
    stream = Stream(cluster, pb, admin, ["catalog"])  # on gateway A
    try:
        stream.wait(lambda ms: "snapshot" in kinds(ms))
        session = max(open_sessions_any(cluster, pb, admin), key=lambda s: s.id)
        assert cluster.instance_of_session(session.id) == "gateway"
        with grpc.insecure_channel(cluster.addr("gateway_b")) as channel:
            stub = pb.rt_grpc.RealtimeStub(channel)
            ended = stub.EndSession(pb.rt.EndSessionRequest(id=session.id), metadata=md(admin), timeout=TIMEOUT)
            assert ended.status == "ended" and "ended by an admin" in ended.end_reason, ended
            with pytest.raises(grpc.RpcError) as again:
                stub.EndSession(pb.rt.EndSessionRequest(id=session.id), metadata=md(admin), timeout=TIMEOUT)
            assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        error = wait_error(stream, timeout=TIMEOUT)
        assert error.code() == grpc.StatusCode.CANCELLED and "ended by an admin" in error.details(), error
    finally:
        stream.close()
