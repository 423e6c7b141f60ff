"""The zero-loss verifier (issue 14): writers change the catalog, the rules and several
projects; subscribers on mixed topics disconnect at random and resume with their last
token; meanwhile the gateway is restarted with SIGTERM and with SIGKILL, an upstream
(rulesd) is restarted, and Postgres (this checkout's cluster, `$STB_PG_CONTROL restart`)
is restarted. Afterwards every subscriber's deltas, per feed, equal the events committed
to that upstream's outbox table for its topics after its snapshot: the same events, in
order, none twice. The gateway runs with a ring of 10 events and no practical replay
bound, so most resumes replay from the upstream's Watch; a resync_required fails the run.

Short by default (scripts/test); STB_VERIFIER_SECONDS=600 for the long form, in which
the four faults come round once a minute."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import threading
import time
import types
from pathlib import Path

import grpc
import pytest

from conftest import REPO
from test_realtime import (platform_databases, ADMIN, ADMIN_PASSWORD, TIMEOUT, Platform, Server, Stream, create_modules, kinds, md, pb,
                           token_positions)

pytestmark = pytest.mark.skipif(
    not (os.environ.get("STB_GATEWAYD_BIN") and os.environ.get("STB_CATALOGD_BIN") and os.environ.get("STB_RULESD_BIN")
         and os.environ.get("STB_PROJECTD_BIN")),
    reason="STB_GATEWAYD_BIN, STB_CATALOGD_BIN, STB_RULESD_BIN and STB_PROJECTD_BIN must be set")

__all__ = ["pb"]  # the stubs fixture, shared with test_realtime
SECONDS = float(os.environ.get("STB_VERIFIER_SECONDS", "12"))
PROJECTS = ["p1", "p2", "p3"]
TOPIC_MIXES = [
    ["catalog"],
    ["rules", "project:p1"],
    ["catalog", "project:p2", "project:p3"],
    ["projects"],
    ["catalog", "rules", "projects"],
    ["project:p1", "rules"],
]
DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"
GATEWAY = {"GATEWAY_REPLAY_LIMIT": "1000000"}


def upstream_of(topic):
    return "project" if topic.startswith("project") else topic


def cursor_key(text):
    revision, sequence = text.split(":")
    return int(revision), int(sequence)


def own_cluster_control():
    """`$STB_PG_CONTROL` when it is this checkout's scripts/db (whose cluster this run
    uses), else None: the verifier never restarts a cluster it did not start."""
    control = os.environ.get("STB_PG_CONTROL")
    if control and Path(control).resolve() == (REPO / "scripts" / "db").resolve():
        return control
    return None


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("realtime-verifier")
    with platform_databases("rv") as urls:
        platform = Platform(tmp, urls)
        platform.gateway_env_overrides = GATEWAY
        original = platform.start_gateway
        platform.start_gateway = lambda **more: original(**{**GATEWAY, **more})
        platform.start()
        try:
            yield platform
        finally:
            platform.stop()


def committed(platform, upstream):
    """Every event of an upstream's outbox, in order: (cursor, entity, project key or '')."""
    out = subprocess.run(["psql", "-At", "-F", " ", platform.urls[upstream], "-c",
                          "SELECT revision || ':' || id, entity, split_part(entity_key, '/', 1) FROM events "
                          "ORDER BY revision, id"],
                         capture_output=True, text=True, check=True, timeout=60)
    rows = [line.split(" ", 2) for line in out.stdout.splitlines() if line]
    return [(cursor, entity, key if upstream == "project" else "") for cursor, entity, key in rows]


def shown(upstream, entity, key, topics):
    """Whether an event of `upstream` goes to a stream of `topics` (an admin's): `projects`
    carries the projects' own and member events, `project:<key>` every event of it."""
    if upstream != "project":
        return True
    return f"project:{key}" in topics or ("projects" in topics and entity in ("project", "member"))


def restart(platform, name, how=signal.SIGTERM):
    server = platform.servers[name]
    if how == signal.SIGKILL:
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=15)
    else:
        assert server.terminate(timeout=20) == 0
    if name == "gateway":
        platform.start_gateway()
    else:
        platform.servers[name] = Server(server.name, server.binary, platform.tmp / f"{name}-{time.time_ns()}.log",
                                        server.env).start()


class Subscriber:
    """One subscriber: streams its topics, cuts the stream at random and resumes with the
    last token it received, recording each delta's (upstream, cursor)."""

    def __init__(self, index, platform, pb, token, topics, stop, newest):
        self.index, self.platform, self.pb, self.token, self.topics = index, platform, pb, token, topics
        self.stop, self.newest = stop, newest
        self.rng = random.Random(1400 + index)
        self.start = {}  # upstream -> cursor of its snapshot
        self.deltas = {upstream_of(t): [] for t in topics}
        self.resume = ""
        self.errors = []
        self.streams = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def caught_up(self, message):
        # Only once the newest cursor of every upstream this subscriber follows is known
        # (with part of them known, the check would pass on the others unchecked).
        newest = dict(self.newest)
        if not all(upstream in newest for upstream in self.deltas):
            return False
        positions = token_positions(message.resume_token)[1]
        return all(upstream in positions and cursor_key(positions[upstream]) >= cursor_key(newest[upstream])
                   for upstream in self.deltas)

    def run(self):
        while True:
            final = self.stop.is_set()
            try:
                resumed = bool(self.resume)
                stream = Stream(self.platform, self.pb, self.token, self.topics, resume=self.resume, read=False)
                self.streams += 1
                cut_after = time.monotonic() + self.rng.uniform(0.2, 1.5)
                for message in stream.call:
                    kind = message.WhichOneof("kind")
                    if kind == "snapshot":
                        upstream = upstream_of(message.snapshot.topic)
                        if resumed:
                            self.errors.append(f"a snapshot on a resumed stream ({message.snapshot.topic})")
                        position = token_positions(message.resume_token)[1].get(upstream)
                        if position is not None:
                            self.start[upstream] = position
                    elif kind == "delta":
                        self.deltas[message.delta.upstream].append((message.delta.cursor, message.delta.topic))
                    elif kind == "resync_required":
                        self.errors.append(f"resync: {message.resync_required.reason}")
                    self.resume = message.resume_token
                    if final and self.caught_up(message):
                        stream.close()
                        return
                    # Cut at random, once every feed's snapshot has come (a token from
                    # before that does not cover every topic, and resumes with a resync).
                    if not final and time.monotonic() > cut_after and set(self.start) >= set(self.deltas):
                        break
                stream.close()
            except grpc.RpcError:
                time.sleep(0.2)  # a restart; resume with the last token
            if self.errors:
                return


def test_a_subscriber_is_caught_up_only_against_every_upstream_it_follows():
    """The verifier's own stop condition: with the newest cursors of only some upstreams
    known, a subscriber behind on another must not count as caught up (it once did, and
    ended a subscriber that was still replaying)."""
    newest = {}
    subscriber = Subscriber(0, None, None, "", ["project:p1", "rules"], threading.Event(), newest)

    def message(body):
        token = base64.urlsafe_b64encode(f"1|e1|{body}".encode()).decode().rstrip("=")
        return types.SimpleNamespace(resume_token=token)

    at_46 = message("project=1:5,rules=1:46")
    newest["catalog"] = "1:10"
    assert not subscriber.caught_up(at_46)
    newest.update(project="1:5", rules="1:106")
    assert not subscriber.caught_up(at_46)
    assert subscriber.caught_up(message("project=1:5,rules=1:106"))
    assert not subscriber.caught_up(message("rules=1:106"))


def test_zero_loss_through_restarts_of_the_gateway_an_upstream_and_postgres(platform, pb):
    with grpc.insecure_channel(platform.addr("gateway")) as channel:
        admin = pb.gateway_grpc.AuthStub(channel).Login(
            pb.gateway.LoginRequest(username=ADMIN, password=ADMIN_PASSWORD), timeout=TIMEOUT).access_token
    # What the writers need: options for rules to name, and the projects.
    catalog = pb.catalog_grpc.CatalogStub(grpc.insecure_channel(platform.addr("catalog")))
    catalog.ImportSeed(pb.catalog.ImportSeedRequest(document_json=DEMO_SEED.read_text(), file_name="demo.json"),
                       metadata=md(admin), timeout=60)
    projects_stub = pb.project_grpc.ProjectsStub(grpc.insecure_channel(platform.addr("project")))
    for key in PROJECTS:
        projects_stub.CreateProject(pb.project.CreateProjectRequest(key=key, name=key.upper()), metadata=md(admin),
                                    timeout=TIMEOUT)

    stop = threading.Event()
    newest = {}
    subscribers = [Subscriber(i, platform, pb, admin, topics, stop, newest) for i, topics in enumerate(TOPIC_MIXES)]
    for subscriber in subscribers:
        subscriber.thread.start()

    counter = iter(range(1, 10**9))

    def retrying(call):
        while not stop.is_set():
            try:
                return call()
            except grpc.RpcError:
                time.sleep(0.1)

    def catalog_writer():
        while not stop.is_set():
            retrying(lambda: create_modules(platform, pb, admin, 1))

    def rules_writer():
        rules = RulesStub(platform)
        while not stop.is_set():
            key = f"v{next(counter)}"
            retrying(lambda: rules.create(admin, key))
            time.sleep(0.05)

    def project_writer():
        rng = random.Random(7)
        while not stop.is_set():
            key = rng.choice(PROJECTS)
            description = f"d{next(counter)}"
            retrying(lambda: pb.project_grpc.ProjectsStub(grpc.insecure_channel(platform.addr("project"))).UpdateProject(
                pb.project.UpdateProjectRequest(key=key, description=description), metadata=md(admin), timeout=TIMEOUT))
            time.sleep(0.02)

    writers = [threading.Thread(target=w, daemon=True) for w in (catalog_writer, catalog_writer, rules_writer, project_writer)]
    for writer in writers:
        writer.start()

    faults = [("gateway", signal.SIGTERM), ("gateway", signal.SIGKILL), ("rules", signal.SIGTERM), ("postgres", None)]
    control = own_cluster_control()
    cycles = max(1, int(SECONDS // 60))
    cycle = SECONDS / cycles
    began = time.monotonic()
    done = []
    for round_ in range(cycles):
        for step, (name, how) in enumerate(faults):
            time.sleep(max(0.0, began + round_ * cycle + (step + 1) * cycle / (len(faults) + 1) - time.monotonic()))
            if name == "postgres":
                if control is None:
                    continue
                subprocess.run([control, "restart"], check=True, capture_output=True, timeout=120)
                done.append("postgres restart")
            else:
                restart(platform, name, how)
                done.append(f"{name} {signal.Signals(how).name}")
    time.sleep(max(0.0, began + SECONDS - time.monotonic()))
    stop.set()
    for writer in writers:
        writer.join(timeout=60)
    # Published in one step: a subscriber must not see some upstreams' newest cursors and
    # not yet the others'.
    newest.update({upstream: committed(platform, upstream)[-1][0] for upstream in ("catalog", "rules", "project")})
    for subscriber in subscribers:
        subscriber.thread.join(timeout=90)

    assert done[:3] == ["gateway SIGTERM", "gateway SIGKILL", "rules SIGTERM"], done
    outboxes = {upstream: committed(platform, upstream) for upstream in ("catalog", "rules", "project")}
    for subscriber in subscribers:
        assert not subscriber.thread.is_alive(), f"subscriber {subscriber.index} did not catch up"
        assert not subscriber.errors, f"subscriber {subscriber.index}: {subscriber.errors}"
        for upstream, got in subscriber.deltas.items():
            start = cursor_key(subscriber.start[upstream])
            wanted = [t for t in subscriber.topics if upstream_of(t) == upstream]
            expected = [c for c, entity, key in outboxes[upstream]
                        if cursor_key(c) > start and shown(upstream, entity, key, wanted)]
            cursors = [c for c, _ in got]
            first = next((k for k, (a, b) in enumerate(zip(cursors, expected)) if a != b), min(len(cursors), len(expected)))
            assert cursors == expected, (
                f"subscriber {subscriber.index} ({subscriber.topics}), {upstream}: got {len(cursors)} events, committed "
                f"{len(expected)}; first difference at {first}: got {cursors[first:first + 3]}, "
                f"committed {expected[first:first + 3]}")
        assert subscriber.streams > 3
    total = sum(len(d) for s in subscribers for d in s.deltas.values())
    print(f"verifier: {SECONDS:.0f} s, faults {done}, {sum(s.streams for s in subscribers)} streams, "
          f"{total} deltas checked against {sum(len(v) for v in outboxes.values())} committed events")


class RulesStub:
    """CreateRule through grpcio with the rules stubs compiled on first use."""

    def __init__(self, platform):
        import importlib
        import sys
        import tempfile
        from conftest import PROTOS
        out = tempfile.mkdtemp(prefix="verifier-rules-")
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}",
                        f"--grpc_python_out={out}", "stb/rules/v1/rules.proto"], check=True, timeout=120)
        sys.path.insert(0, out)
        try:
            for name in [n for n in sys.modules if n.startswith("stb.rules")]:
                del sys.modules[name]
            self.pb = importlib.import_module("stb.rules.v1.rules_pb2")
            grpc_module = importlib.import_module("stb.rules.v1.rules_pb2_grpc")
        finally:
            sys.path.remove(out)
        self.stub = grpc_module.RulesStub(grpc.insecure_channel(platform.addr("rules")))

    def create(self, token, key):
        rule = self.pb.Rule(key=key, subject="resolution", type=self.pb.RULE_TYPE_VALIDATION,
                            payload_json=json.dumps({"logic": {"==": [{"var": "resolution"}, "4k"]}}),
                            severity=self.pb.SEVERITY_WARNING, message="verifier", active=False)
        return self.stub.CreateRule(self.pb.CreateRuleRequest(rule=rule), metadata=md(token), timeout=TIMEOUT)
