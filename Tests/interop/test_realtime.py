"""The gateway's realtime streams (stb.gateway.v1.Realtime/Subscribe) through a stock
grpcio client, against real catalogd, rulesd, projectd and gatewayd processes on fresh
databases. The services verify tokens with the gateway's keys (as deployed), users sign
in at the gateway, and the gateway follows the upstreams as its own service account.

A small ring (GATEWAY_RING_EVENTS=10) and replay bound (GATEWAY_REPLAY_LIMIT=40) make
each resume path reachable: from the ring, from the upstream's Watch, and beyond the
bound (resync_required then a snapshot)."""

from __future__ import annotations

import base64
import collections
import contextlib
import importlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from conftest import (HOST, PROTOS, REPO, CatalogServer, _free_port, fresh_database, health_status,
                      HEALTH_SERVING)

pytestmark = pytest.mark.skipif(
    not (os.environ.get("STB_GATEWAYD_BIN") and os.environ.get("STB_CATALOGD_BIN") and os.environ.get("STB_RULESD_BIN")),
    reason="STB_GATEWAYD_BIN, STB_CATALOGD_BIN and STB_RULESD_BIN must be set")

ADMIN, ADMIN_PASSWORD = "root", "admin password 0123"
SECRET = "service secret 0123456789"
TIMEOUT = 20
RING_EVENTS, REPLAY_LIMIT, QUEUE_BYTES = 10, 40, 65536


def binary(variable: str, name: str) -> Path:
    configured = os.environ.get(variable)
    if configured:
        return Path(configured).resolve()
    return Path(os.environ["STB_GATEWAYD_BIN"]).resolve().parent / name


class Server(CatalogServer):
    def __init__(self, name, binary_path, log_path, env):
        super().__init__(binary_path, log_path, env)
        self.name = name
        self.ready_prefix = f"{name} listening on ".encode()


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    out = tmp_path_factory.mktemp("realtime-stubs")
    files = ["stb/common/v1/common.proto", "stb/catalog/v1/catalog.proto", "stb/rules/v1/rules.proto",
             "stb/project/v1/project.proto", "stb/gateway/v1/gateway.proto", "stb/gateway/v1/realtime.proto"]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}",
                    f"--grpc_python_out={out}", *files], check=True, timeout=120)
    sys.path.insert(0, str(out))
    try:
        mods = {name: importlib.import_module(name) for name in [
            "stb.catalog.v1.catalog_pb2", "stb.catalog.v1.catalog_pb2_grpc", "stb.project.v1.project_pb2",
            "stb.project.v1.project_pb2_grpc", "stb.gateway.v1.gateway_pb2", "stb.gateway.v1.gateway_pb2_grpc",
            "stb.gateway.v1.realtime_pb2", "stb.gateway.v1.realtime_pb2_grpc"]}
    finally:
        sys.path.remove(str(out))
    class P:  # noqa: D401 - a namespace
        catalog = mods["stb.catalog.v1.catalog_pb2"]
        catalog_grpc = mods["stb.catalog.v1.catalog_pb2_grpc"]
        project = mods["stb.project.v1.project_pb2"]
        project_grpc = mods["stb.project.v1.project_pb2_grpc"]
        gateway = mods["stb.gateway.v1.gateway_pb2"]
        gateway_grpc = mods["stb.gateway.v1.gateway_pb2_grpc"]
        rt = mods["stb.gateway.v1.realtime_pb2"]
        rt_grpc = mods["stb.gateway.v1.realtime_pb2_grpc"]
    return P


class Platform:
    """gatewayd first (the others fetch its keys and sign in there), then catalogd,
    rulesd and projectd."""

    def __init__(self, tmp: Path, urls: dict[str, str]):
        self.tmp = tmp
        self.urls = urls
        self.ports = {name: _free_port() for name in ("gateway", "catalog", "rules", "project")}
        self.servers: dict[str, Server] = {}

    def addr(self, name):
        return f"{HOST}:{self.ports[name]}"

    def gateway_env(self):
        return {
            "GATEWAY_HOST": HOST, "GATEWAY_PORT": str(self.ports["gateway"]),
            "GATEWAY_DATABASE_URL": self.urls["gateway"],
            "GATEWAY_MIGRATIONS_DIR": str(REPO / "services" / "gateway" / "migrations"),
            "GATEWAY_SERVICE_ACCOUNTS": f"rules:{SECRET},project:{SECRET}",
            "GATEWAY_CATALOG_ADDR": self.addr("catalog"), "GATEWAY_RULES_ADDR": self.addr("rules"),
            "GATEWAY_PROJECT_ADDR": self.addr("project"),
            "GATEWAY_RING_EVENTS": str(RING_EVENTS), "GATEWAY_REPLAY_LIMIT": str(REPLAY_LIMIT),
            "GATEWAY_STREAM_QUEUE_BYTES": str(QUEUE_BYTES), "GATEWAY_HEARTBEAT_SECONDS": "1",
            "GATEWAY_STREAM_QUOTAS": "viewer:3,operator:3,engineer:3,admin:40,service:10",
            "GATEWAY_PASSWORD_MIN_LENGTH": "12",
        }

    def start_gateway(self, **overrides):
        self.servers["gateway"] = Server("gatewayd", binary("STB_GATEWAYD_BIN", "gatewayd"),
                                         self.tmp / f"gatewayd-{time.time_ns()}.log",
                                         {**self.gateway_env(), **overrides}).start()

    def start(self):
        env = {**os.environ, **self.gateway_env()}
        boot = subprocess.run([str(binary("STB_GATEWAYD_BIN", "gatewayd")), "bootstrap-admin", ADMIN],
                              input=ADMIN_PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
        assert boot.returncode == 0, boot.stderr
        self.start_gateway()
        common = {"STB_AUTH_KEYS_FILE": "", "STB_GATEWAY_ADDR": self.addr("gateway")}
        self.servers["catalog"] = Server("catalogd", binary("STB_CATALOGD_BIN", "catalogd"), self.tmp / "catalogd.log", {
            **common, "CATALOG_SERVICE_TOKEN": "", "CATALOG_HOST": HOST, "CATALOG_PORT": str(self.ports["catalog"]),
            "CATALOG_DATABASE_URL": self.urls["catalog"],
            "CATALOG_MIGRATIONS_DIR": str(REPO / "services" / "catalog" / "migrations")}).start()
        self.servers["rules"] = Server("rulesd", binary("STB_RULESD_BIN", "rulesd"), self.tmp / "rulesd.log", {
            **common, "RULES_SERVICE_TOKEN": "", "RULES_SERVICE_SECRET": SECRET, "RULES_HOST": HOST,
            "RULES_PORT": str(self.ports["rules"]), "RULES_DATABASE_URL": self.urls["rules"],
            "RULES_MIGRATIONS_DIR": str(REPO / "services" / "rules" / "migrations"),
            "RULES_CATALOG_ADDR": self.addr("catalog")}).start()
        self.wait_serving("rules")
        self.servers["project"] = Server("projectd", binary("STB_PROJECTD_BIN", "projectd"), self.tmp / "projectd.log", {
            **common, "PROJECT_SERVICE_TOKEN": "", "PROJECT_SERVICE_SECRET": SECRET, "PROJECT_HOST": HOST,
            "PROJECT_PORT": str(self.ports["project"]), "PROJECT_DATABASE_URL": self.urls["project"],
            "PROJECT_MIGRATIONS_DIR": str(REPO / "services" / "project" / "migrations"),
            "PROJECT_CATALOG_ADDR": self.addr("catalog"), "PROJECT_RULES_ADDR": self.addr("rules")}).start()
        self.wait_serving("project")
        return self

    def wait_serving(self, name, timeout=60):
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.addr(name)) as channel:
            while time.monotonic() < deadline:
                try:
                    if health_status(channel) == HEALTH_SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"{name} not SERVING\n{self.servers[name].log_tail()}")

    def stop(self):
        for name in ("project", "rules", "catalog", "gateway"):
            server = self.servers.get(name)
            if server and server.alive():
                server.terminate(timeout=15)


@contextlib.contextmanager
def platform_databases(prefix):
    """Fresh gateway, catalog, rules and project databases (`<prefix>_<service>_<pid>`),
    as the URLs a `Platform` takes."""
    pid = os.getpid()
    with fresh_database(f"{prefix}_gateway_{pid}", "gateway") as g, fresh_database(f"{prefix}_catalog_{pid}", "catalog") as c, \
            fresh_database(f"{prefix}_rules_{pid}", "rules") as r, fresh_database(f"{prefix}_project_{pid}", "project") as p:
        yield {"gateway": g, "catalog": c, "rules": r, "project": p}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("realtime")
    with platform_databases("rt") as urls:
        platform = Platform(tmp, urls).start()
        try:
            yield platform
        finally:
            platform.stop()


@pytest.fixture(scope="module")
def users(platform, pb):
    """Access tokens: the admin's, an engineer's and a viewer's (with their user ids)."""
    with grpc.insecure_channel(platform.addr("gateway")) as channel:
        auth = pb.gateway_grpc.AuthStub(channel)
        admin = auth.Login(pb.gateway.LoginRequest(username=ADMIN, password=ADMIN_PASSWORD), timeout=TIMEOUT)
        md = [("authorization", f"Bearer {admin.access_token}")]
        tokens = {"admin": (admin.access_token, "")}
        for name, role in (("eve", pb.gateway.ROLE_ENGINEER), ("vic", pb.gateway.ROLE_VIEWER)):
            user = auth.CreateUser(pb.gateway.CreateUserRequest(username=name, role=role, password=f"{name} password 0123"),
                                   metadata=md, timeout=TIMEOUT)
            login = auth.Login(pb.gateway.LoginRequest(username=name, password=f"{name} password 0123"), timeout=TIMEOUT)
            tokens[name] = (login.access_token, user.id)
    return tokens


def md(token):
    return [("authorization", f"Bearer {token}")]


class Stream:
    """A Subscribe call read on a thread into a list."""

    def __init__(self, platform, pb, token, topics, resume="", read=True):
        self.channel = grpc.insecure_channel(platform.addr("gateway"))
        self.call = pb.rt_grpc.RealtimeStub(self.channel).Subscribe(
            pb.rt.SubscribeRequest(topics=topics, resume_token=resume), metadata=md(token))
        self.messages = []
        self.error = None
        self.lock = threading.Condition()
        if read:
            self.start()

    def start(self):
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for message in self.call:
                with self.lock:
                    self.messages.append(message)
                    self.lock.notify_all()
        except grpc.RpcError as error:
            with self.lock:
                self.error = error
                self.lock.notify_all()

    def wait(self, predicate, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.error is not None and not predicate(self.messages):
                    raise AssertionError(f"timed out; error={self.error}; got {[m.WhichOneof('kind') for m in self.messages]}")
                self.lock.wait(remaining)
            return list(self.messages)

    def deltas(self):
        with self.lock:
            return [m.delta for m in self.messages if m.WhichOneof("kind") == "delta"]

    def last_token(self):
        with self.lock:
            return self.messages[-1].resume_token

    def close(self):
        self.call.cancel()
        self.channel.close()


def kinds(messages):
    return [m.WhichOneof("kind") for m in messages]


def catalog_stub(platform, pb):
    return pb.catalog_grpc.CatalogStub(grpc.insecure_channel(platform.addr("catalog")))


COUNTER = iter(range(1, 10**9))


def create_modules(platform, pb, token, count, description=""):
    stub = catalog_stub(platform, pb)
    keys = []
    for _ in range(count):
        key = f"m{next(COUNTER)}"
        stub.CreateModule(pb.catalog.CreateModuleRequest(module=pb.catalog.Module(key=key, name=key, description=description)),
                          metadata=md(token), timeout=TIMEOUT)
        keys.append(key)
    return keys


def token_positions(token):
    plain = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    _, epoch, body = plain.split("|")
    return epoch, dict(item.split("=") for item in body.split(",") if item)


def test_snapshot_then_deltas_each_with_a_token(platform, pb, users):
    admin = users["admin"][0]
    stream = Stream(platform, pb, admin, ["catalog", "rules", "alarms"])
    try:
        got = stream.wait(lambda ms: len([k for k in kinds(ms) if k == "snapshot"]) == 3)
        assert sorted(m.snapshot.topic for m in got if m.WhichOneof("kind") == "snapshot") == ["alarms", "catalog", "rules"]
        keys = create_modules(platform, pb, admin, 3)
        stream.wait(lambda ms: len([m for m in ms if m.WhichOneof("kind") == "delta"]) >= 3)
        deltas = stream.deltas()
        assert [d.key for d in deltas] == keys and {d.topic for d in deltas} == {"catalog"}
        event = pb.catalog.ChangeEvent.FromString(deltas[0].event)
        assert event.key == keys[0] and event.cursor == deltas[0].cursor
        assert all(m.resume_token for m in stream.messages)
    finally:
        stream.close()


def test_resume_replays_exactly_what_was_missed_from_the_ring_and_from_the_upstream(platform, pb, users):
    admin = users["admin"][0]
    for missed in (3, RING_EVENTS + 5):  # within the ring; beyond it (the catalog's Watch)
        stream = Stream(platform, pb, admin, ["catalog"])
        stream.wait(lambda ms: "snapshot" in kinds(ms))
        token = stream.last_token()
        stream.close()
        keys = create_modules(platform, pb, admin, missed)
        resumed = Stream(platform, pb, admin, ["catalog"], resume=token)
        try:
            resumed.wait(lambda ms: len([m for m in ms if m.WhichOneof("kind") == "delta"]) >= missed)
            # A heartbeat after the replay: nothing else was queued.
            resumed.wait(lambda ms: "heartbeat" in kinds(ms), timeout=TIMEOUT)
            assert "snapshot" not in kinds(resumed.messages) and "resync_required" not in kinds(resumed.messages)
            assert [d.key for d in resumed.deltas()] == keys, f"missed {missed}"
        finally:
            resumed.close()


def test_a_gap_beyond_the_replay_bound_is_a_resync_then_a_snapshot(platform, pb, users):
    admin = users["admin"][0]
    stream = Stream(platform, pb, admin, ["catalog"])
    stream.wait(lambda ms: "snapshot" in kinds(ms))
    token = stream.last_token()
    stream.close()
    # More than the ring holds plus the bound: the upstream replay would pass the bound.
    keys = create_modules(platform, pb, admin, REPLAY_LIMIT + RING_EVENTS + 5)
    resumed = Stream(platform, pb, admin, ["catalog"], resume=token)
    try:
        got = resumed.wait(lambda ms: "snapshot" in kinds(ms))
        # The first part of the replay (at most the bound), then the resync and a snapshot.
        resync = kinds(got).index("resync_required")
        assert set(kinds(got)[:resync]) <= {"delta", "heartbeat"}, kinds(got)
        assert [m.delta.key for m in got[:resync] if m.WhichOneof("kind") == "delta"] == keys[:REPLAY_LIMIT]
        assert kinds(got)[resync + 1] == "snapshot", kinds(got)
        assert "missed" in got[resync].resync_required.reason and list(got[resync].resync_required.topics) == ["catalog"]
        assert "delta" not in kinds(got)[resync:]
    finally:
        resumed.close()


def test_a_replay_cut_after_a_few_messages_each_time_makes_progress_on_every_resume(platform, pb, users):
    """A subscriber far behind the ring (further than the replay bound) whose stream is cut
    after a few messages every time, as on a flaky link or behind a proxy that cuts
    streams: each resume delivers the next events at once, so every resume moves the
    token on, and in the end the subscriber has exactly the committed events, in order,
    none twice, without a resync."""
    admin = users["admin"][0]
    stream = Stream(platform, pb, admin, ["catalog"])
    stream.wait(lambda ms: "snapshot" in kinds(ms))
    token = stream.last_token()
    stream.close()
    keys = create_modules(platform, pb, admin, 3 * REPLAY_LIMIT)
    cut_after, got, resumes = 7, [], 0
    while len(got) < len(keys):
        assert resumes < len(keys), f"no end after {resumes} resumes; got {len(got)} of {len(keys)}"
        resumes += 1
        with grpc.insecure_channel(platform.addr("gateway")) as channel:
            call = pb.rt_grpc.RealtimeStub(channel).Subscribe(
                pb.rt.SubscribeRequest(topics=["catalog"], resume_token=token), metadata=md(admin), timeout=TIMEOUT)
            received = []
            try:
                for message in call:
                    kind = message.WhichOneof("kind")
                    assert kind in ("delta", "heartbeat"), f"resume {resumes} after {len(got)} events: {kind}"
                    if kind == "delta":
                        received.append(message.delta.key)
                        token = message.resume_token
                    if len(received) == cut_after or len(got) + len(received) == len(keys):
                        break
            finally:
                call.cancel()
        assert received, f"resume {resumes} after {len(got)} events: no progress"
        got += received
    assert got == keys
    assert resumes >= len(keys) // cut_after


def test_bad_input_gets_clear_statuses_or_a_resync(platform, pb, users):
    admin, vic = users["admin"][0], users["vic"][0]
    def refused(token, topics, resume=""):
        stream = Stream(platform, pb, token, topics, resume=resume)
        try:
            stream.wait(lambda ms: stream.error is not None)
        except AssertionError:
            pass
        stream.close()
        assert stream.error is not None, "expected a refusal"
        return stream.error
    assert refused(admin, ["weather"]).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused(admin, [f"project:p{i}" for i in range(5000)]).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused(admin, ["catalog"], resume="garbage!").code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused(vic, ["project:nowhere"]).code() == grpc.StatusCode.PERMISSION_DENIED
    # A well-formed token of another deployment: resync in band.
    foreign = base64.urlsafe_b64encode(b"v1|deadbeefdeadbeef|catalog=1:1").rstrip(b"=").decode()
    stream = Stream(platform, pb, admin, ["catalog"], resume=foreign)
    try:
        got = stream.wait(lambda ms: "snapshot" in kinds(ms))
        assert kinds(got)[:2] == ["resync_required", "snapshot"]
        assert "another deployment" in got[0].resync_required.reason
    finally:
        stream.close()


def test_a_removed_member_stops_receiving_the_project(platform, pb, users):
    eve, (vic, vic_id) = users["eve"][0], users["vic"]
    projects = pb.project_grpc.ProjectsStub(grpc.insecure_channel(platform.addr("project")))
    projects.CreateProject(pb.project.CreateProjectRequest(key="p1", name="P1"), metadata=md(eve), timeout=TIMEOUT)
    projects.SetMember(pb.project.SetMemberRequest(project_key="p1", username="vic", role=pb.project.PROJECT_ROLE_VIEWER),
                       metadata=md(eve), timeout=TIMEOUT)
    stream = Stream(platform, pb, vic, ["project:p1"])
    try:
        stream.wait(lambda ms: "snapshot" in kinds(ms))
        projects.UpdateProject(pb.project.UpdateProjectRequest(key="p1", description="one"), metadata=md(eve), timeout=TIMEOUT)
        stream.wait(lambda ms: any(m.delta.entity == "project" for m in ms if m.WhichOneof("kind") == "delta"))
        projects.RemoveMember(pb.project.RemoveMemberRequest(project_key="p1", user_id=vic_id), metadata=md(eve), timeout=TIMEOUT)
        projects.UpdateProject(pb.project.UpdateProjectRequest(key="p1", description="two"), metadata=md(eve), timeout=TIMEOUT)
        # An admin's stream sees the second update; vic's does not.
        watcher = Stream(platform, pb, users["admin"][0], ["project:p1"])
        watcher.wait(lambda ms: "snapshot" in kinds(ms))
        projects.UpdateProject(pb.project.UpdateProjectRequest(key="p1", description="three"), metadata=md(eve), timeout=TIMEOUT)
        watcher.wait(lambda ms: any(m.delta.entity == "project" for m in ms if m.WhichOneof("kind") == "delta"))
        time.sleep(1.5)
        seen = [pb.project.ChangeEvent.FromString(d.event).state_json for d in stream.deltas() if d.entity == "project"]
        assert len(seen) == 1 and '"one"' in seen[0], seen
        watcher.close()
    finally:
        stream.close()


def test_a_slow_consumer_ends_with_resource_exhausted_and_nobody_else_waits(platform, pb, users):
    admin = users["admin"][0]
    reader = Stream(platform, pb, admin, ["catalog"])
    reader.wait(lambda ms: "snapshot" in kinds(ms))
    slow = Stream(platform, pb, admin, ["catalog"], read=False)
    slow.channel.close()
    slow.channel = grpc.insecure_channel(platform.addr("gateway"), options=[("grpc.http2.bdp_probe", 0)])
    slow.call = pb.rt_grpc.RealtimeStub(slow.channel).Subscribe(pb.rt.SubscribeRequest(topics=["catalog"]), metadata=md(admin))
    try:
        # The slow stream's first message (the snapshot) is not read; then a lot is written.
        keys = create_modules(platform, pb, admin, 600, description="x" * 1900)
        reader.wait(lambda ms: len([m for m in ms if m.WhichOneof("kind") == "delta"]) >= 600, timeout=90)
        assert [d.key for d in reader.deltas()] == keys
        # Unread for longer than the gateway's patience (3 s) after the last change: when
        # the creations outran the slow stream's producer, it resynced and queued a large
        # snapshot with nothing after it, and only the streams' clock can find it slow.
        time.sleep(4.5)
        slow.start()
        deadline = time.monotonic() + 30
        while slow.error is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert slow.error is not None and slow.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (
            slow.error, len(slow.messages), collections.Counter(kinds(slow.messages)), len(slow.deltas()))
        assert "slow consumer" in slow.error.details()
        trailer = dict(slow.error.trailing_metadata() or ())
        assert trailer.get("stb-resume-token"), trailer
        assert len(slow.deltas()) < 600
    finally:
        reader.close()
        slow.close()


def test_quota_and_sessions(platform, pb, users):
    vic = users["vic"][0]
    streams = [Stream(platform, pb, vic, ["catalog"]) for _ in range(3)]
    try:
        for stream in streams:
            stream.wait(lambda ms: "snapshot" in kinds(ms))
        extra = Stream(platform, pb, vic, ["catalog"])
        deadline = time.monotonic() + 30
        while extra.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert extra.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "streams_per_user" in extra.error.details()
        with grpc.insecure_channel(platform.addr("gateway")) as channel:
            stub = pb.rt_grpc.RealtimeStub(channel)
            listed = stub.ListSessions(pb.rt.ListSessionsRequest(open_only=True), metadata=md(users["admin"][0]), timeout=TIMEOUT)
            mine = [s for s in listed.sessions if s.username == "vic"]
            assert len(mine) == 3 and all(list(s.topics) == ["catalog"] for s in mine)
            stub.EndSession(pb.rt.EndSessionRequest(id=mine[0].id), metadata=md(users["admin"][0]), timeout=TIMEOUT)
            with pytest.raises(grpc.RpcError) as denied:
                stub.ListSessions(pb.rt.ListSessionsRequest(), metadata=md(vic), timeout=TIMEOUT)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        for stream in streams:
            stream.close()


def committed_catalog_cursors(platform):
    out = subprocess.run(["psql", "-At", platform.urls["catalog"], "-c",
                          "SELECT revision || ':' || id FROM events ORDER BY revision, id"],
                         capture_output=True, text=True, check=True)
    return [line for line in out.stdout.split() if line]


def cursor_key(text):
    revision, sequence = text.split(":")
    return int(revision), int(sequence)


def test_zero_loss_verifier_short(platform, pb, users):
    """Writers commit while subscribers disconnect at random and resume with their last
    token; the gateway is restarted once with SIGTERM. Afterwards each subscriber's
    catalog deltas equal the committed events after its first snapshot, in order, none
    twice. The gateway runs with a ring of 10 and no practical replay bound, so most
    resumes replay from the catalog's Watch."""
    admin = users["admin"][0]
    platform.servers["gateway"].terminate(timeout=15)
    platform.start_gateway(GATEWAY_REPLAY_LIMIT="1000000")
    rng = random.Random(14)
    stop = threading.Event()
    received = {i: {"start": None, "cursors": [], "token": ""} for i in range(4)}

    def subscriber(i):
        state = received[i]
        final = False
        while True:
            final = stop.is_set()
            # The last pass (writers stopped) reads until the newest committed event.
            newest = committed_catalog_cursors(platform)[-1] if final else None
            try:
                stream = Stream(platform, pb, admin, ["catalog"], resume=state["token"], read=False)
                cut_after = time.monotonic() + rng.uniform(0.2, 1.5)
                for message in stream.call:
                    kind = message.WhichOneof("kind")
                    if kind == "snapshot":
                        assert state["start"] is None, "a second snapshot (resync) in the verifier"
                        state["start"] = token_positions(message.resume_token)[1]["catalog"]
                    elif kind == "delta":
                        state["cursors"].append(message.delta.cursor)
                    elif kind == "resync_required":
                        state["error"] = f"resync in the verifier: {message.resync_required.reason}"
                        return
                    state["token"] = message.resume_token
                    caught_up = final and (state["cursors"][-1:] == [newest] or (kind == "heartbeat" and
                                           cursor_key(newest) <= cursor_key(state["start"] or "0:0")))
                    if caught_up or (not final and time.monotonic() > cut_after):
                        break
                stream.close()
                if final:
                    return
            except grpc.RpcError:
                time.sleep(0.2)  # the gateway is restarting

    def writer():
        while not stop.is_set():
            try:
                create_modules(platform, pb, admin, 1)
            except grpc.RpcError:
                time.sleep(0.1)

    threads = [threading.Thread(target=subscriber, args=(i,), daemon=True) for i in received]
    writers = [threading.Thread(target=writer, daemon=True) for _ in range(2)]
    for thread in threads + writers:
        thread.start()
    time.sleep(4)
    gateway = platform.servers["gateway"]
    assert gateway.terminate(timeout=15) == 0
    platform.start_gateway(GATEWAY_REPLAY_LIMIT="1000000")
    time.sleep(4)
    stop.set()
    for thread in writers:
        thread.join(timeout=30)
    time.sleep(2)
    for thread in threads:
        thread.join(timeout=60)
    committed = committed_catalog_cursors(platform)
    for i, state in received.items():
        assert "error" not in state, state["error"]
        assert state["start"] is not None
        start = cursor_key(state["start"])
        expected = [c for c in committed if cursor_key(c) > start]
        got = state["cursors"]
        assert len(got) == len(set(got)), f"subscriber {i}: duplicates"
        assert got == expected[:len(got)] and len(got) == len(expected), \
            f"subscriber {i}: got {len(got)} events, committed {len(expected)}; first difference at " \
            f"{next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))}"


def test_alarms_follow_the_gateways_own_outbox(platform, pb, users):
    """An event the gateway's database records (as the alarms do) reaches `alarms`."""
    stream = Stream(platform, pb, users["vic"][0], ["alarms"])
    try:
        stream.wait(lambda ms: "snapshot" in kinds(ms))
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", platform.urls["gateway"], "-c", """
            BEGIN;
            UPDATE gateway_revision SET revision = revision + 1;
            INSERT INTO events (revision, entity, entity_key, action, payload)
                SELECT revision, 'alarm', 'p1/validity', 'raised', '\\x0102'::bytea FROM gateway_revision;
            NOTIFY gateway_events;
            COMMIT;"""], check=True, capture_output=True, timeout=30)
        got = stream.wait(lambda ms: "delta" in kinds(ms))
        delta = [m.delta for m in got if m.WhichOneof("kind") == "delta"][0]
        assert (delta.topic, delta.upstream, delta.entity, delta.key, delta.action, delta.event) == \
            ("alarms", "alarms", "alarm", "p1/validity", "raised", b"\x01\x02")
    finally:
        stream.close()


def test_stbctl_subscribe_prints_and_resumes_across_a_gateway_restart(platform, pb, users):
    admin = users["admin"][0]
    stbctl = binary("STB_STBCTL_BIN", "stbctl")
    env = {**os.environ, "STB_TOKEN": admin, "XDG_CONFIG_HOME": str(platform.tmp)}
    proc = subprocess.Popen([str(stbctl), "subscribe", "catalog", "--gateway-addr", platform.addr("gateway")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)
    lines = []

    def read():
        for line in proc.stdout:
            lines.append(line.strip())
    threading.Thread(target=read, daemon=True).start()

    def wait_for(predicate, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                proc.terminate()
                raise AssertionError(f"{lines}\nstderr: {proc.stderr.read()}")
            time.sleep(0.05)
    try:
        wait_for(lambda: any(line.startswith("snapshot catalog") for line in lines))
        first = create_modules(platform, pb, admin, 1)[0]
        wait_for(lambda: any(line.endswith(f"module {first}") for line in lines))
        assert platform.servers["gateway"].terminate(timeout=15) == 0
        missed = create_modules(platform, pb, admin, 2)
        platform.start_gateway()
        wait_for(lambda: any(line.endswith(f"module {missed[1]}") for line in lines), timeout=40)
        modules = [line.rsplit(" ", 1)[1] for line in lines if " module " in line]
        assert modules == [first] + missed, lines
        assert sum(line.startswith("snapshot") for line in lines) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
