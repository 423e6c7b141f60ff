"""The edge (scripts/edge: nghttpx) in front of the real catalogd and rulesd.

A stock grpcio client calls the services through the edge, over h2c on the cleartext port
and over TLS (ALPN h2) on the TLS port with the self-signed certificate scripts/edge
makes: unary GetConfig and Evaluate, a health check, errors with their status, and a
server-streaming Watch that receives a change made meanwhile. Unknown paths get a prompt
404 (UNIMPLEMENTED for grpcio), also for HTTP/1.1 curl.

The edge runs on free ports (STB_EDGE_HTTP_PORT, STB_EDGE_TLS_PORT,
STB_EDGE_FALLBACK_PORT) with its files in a temporary STB_EDGE_DIR, so it never collides
with a running scripts/up. Skipped when nghttpx (Debian nghttp2-proxy) or nghttpd
(nghttp2-server) is not installed; scripts/install-deps installs both.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest

import auth_tokens

from conftest import (CHANNEL_OPTIONS, HEALTH_SERVING, HOST, REPO, _free_port, health_status,
                      own_catalog_database)

pytestmark = [
    pytest.mark.skipif(
        not (os.environ.get("STB_CATALOGD_BIN") and os.environ.get("STB_RULESD_BIN")),
        reason="STB_CATALOGD_BIN and STB_RULESD_BIN must be set: these tests need catalogd and rulesd",
    ),
    pytest.mark.skipif(
        not (shutil.which("nghttpx") and shutil.which("nghttpd")),
        reason="nghttpx or nghttpd is not installed (Debian: apt-get install nghttp2-proxy "
               "nghttp2-server; scripts/install-deps does it)",
    ),
]

EDGE = REPO / "scripts" / "edge"
ACTOR = "pytest-edge"
# The verified caller is the token's; stb-actor decides nothing.
METADATA = (("stb-actor", ACTOR),) + tuple(auth_tokens.metadata(auth_tokens.mint("admin", ACTOR)))
TIMEOUT = 30
DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"
READY = b"edge listening on "


class Edge:
    """One scripts/edge process (nghttpx and its 404 fallback)."""

    def __init__(self, directory: Path, catalog_addr: str, rules_addr: str, **extra: str):
        self.dir = directory
        self.http_port = _free_port()
        self.tls_port = _free_port()
        self.fallback_port = _free_port()
        self.env = dict(os.environ)
        for name in ("STB_EDGE_CERT", "STB_EDGE_KEY", "STB_EDGE_HOST"):
            self.env.pop(name, None)
        self.env.update({
            "STB_EDGE_HTTP_PORT": str(self.http_port),
            "STB_EDGE_TLS_PORT": str(self.tls_port),
            "STB_EDGE_FALLBACK_PORT": str(self.fallback_port),
            # Unrouted paths go to the gateway; without one, the 404 fallback stands in.
            "STB_GATEWAY_ADDR": f"127.0.0.1:{self.fallback_port}",
            "STB_EDGE_DIR": str(directory),
            "STB_CATALOG_ADDR": catalog_addr,
            "STB_RULES_ADDR": rules_addr,
            **extra,
        })
        self.log_path = directory.parent / f"{directory.name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "Edge":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(EDGE)], stdout=subprocess.PIPE, stderr=self._log,
                                     stdin=subprocess.DEVNULL, env=self.env, cwd=REPO,
                                     start_new_session=True)
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        output, deadline = b"", time.monotonic() + timeout
        while READY not in output:
            if self.proc.poll() is not None:
                raise AssertionError(f"scripts/edge exited with {self.proc.returncode}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"scripts/edge not ready within {timeout} s\n{self.log_tail()}")
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                chunk = b""
            if not chunk:
                time.sleep(0.02)
            output += chunk
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self):
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, True)
        try:
            while os.read(fd, 65536):
                pass
        except OSError:
            pass

    @property
    def cert(self) -> Path:
        return self.dir / "edge.crt"

    def channel(self, transport: str) -> grpc.Channel:
        if transport == "h2c":
            return grpc.insecure_channel(f"{HOST}:{self.http_port}", options=CHANNEL_OPTIONS)
        credentials = grpc.ssl_channel_credentials(root_certificates=self.cert.read_bytes())
        # The certificate names localhost and 127.0.0.1: no target name override is needed.
        return grpc.secure_channel(f"localhost:{self.tls_port}", credentials, options=CHANNEL_OPTIONS)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no edge log)"
        return "--- scripts/edge log (tail) ---\n" + "\n".join(text[-lines:])

    def terminate(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"scripts/edge did not exit within {timeout} s of SIGTERM")
        self._log.close()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if not self._log.closed:
            self._log.close()


def accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def catalog_database():
    with own_catalog_database("edge") as url:
        yield url


@pytest.fixture(scope="module")
def edge(catalog_server, rules_server, tmp_path_factory):
    """scripts/edge in front of this module's catalogd and rulesd. At teardown it must
    exit with status 0 within 10 s of SIGTERM and leave no listener behind."""
    server = Edge(tmp_path_factory.mktemp("edge") / "state", catalog_server.addr, rules_server.addr,
                  STB_PROJECT_ADDR=PROJECT_ADDR).start()
    yield server
    assert server.proc.poll() is None, f"scripts/edge died during the tests\n{server.log_tail()}"
    code = server.terminate()
    assert code == 0, f"scripts/edge exited with {code} after SIGTERM\n{server.log_tail()}"
    # Its processes may take a moment more to let go of their ports.
    deadline = time.monotonic() + 20
    for port in (server.http_port, server.tls_port, server.fallback_port):
        while accepts(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not accepts(port), f"port {port} still accepts connections after the edge stopped"


@pytest.fixture(scope="module")
def demo(catalog_server, rules_server, stubs):
    """The demo catalog and rules, loaded directly (not through the edge), once rulesd's
    copy of the catalog has the demo options."""
    cpb, rpb = stubs.catalog_pb2, stubs.rules_pb2
    document = DEMO_SEED.read_text()
    with catalog_server.channel() as channel:
        seeded = stubs.catalog_grpc.CatalogStub(channel).ImportSeed(
            cpb.ImportSeedRequest(document_json=document, file_name="demo.json"),
            metadata=METADATA, timeout=TIMEOUT)
    with rules_server.channel() as channel:
        rules = stubs.rules_grpc.RulesStub(channel)
        deadline = time.monotonic() + 30
        while rules.CheckRules(rpb.CheckRulesRequest(), metadata=METADATA,
                               timeout=TIMEOUT).catalog_revision < seeded.revision:
            assert time.monotonic() < deadline, "rulesd did not catch up with the demo catalog"
            time.sleep(0.1)
        rules.ImportRules(rpb.ImportRulesRequest(document_json=document, file_name="demo.json"),
                          metadata=METADATA, timeout=TIMEOUT)
    return seeded


@pytest.fixture(scope="module", params=["h2c", "tls"])
def transport(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def channel(edge, transport):
    with edge.channel(transport) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield channel


def curl(*args: str) -> tuple[str, str]:
    """(HTTP status, HTTP version) of one curl request."""
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "--max-time", "10", *args],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"curl {' '.join(args)} failed: {result.stderr}"
    status, version = result.stdout.split()
    return status, version


# -- gRPC through the edge -------------------------------------------------------------


def test_health_check_goes_to_the_catalog(channel):
    assert health_status(channel) == HEALTH_SERVING


def test_get_config(channel, stubs, demo):
    pb = stubs.catalog_pb2
    catalog = stubs.catalog_grpc.CatalogStub(channel)
    config = catalog.GetConfig(pb.GetConfigRequest(), metadata=METADATA, timeout=TIMEOUT)
    assert config.revision >= demo.revision
    assert "video" in [m.module.key for m in config.modules]
    same = catalog.GetConfig(pb.GetConfigRequest(known_revision=config.revision),
                             metadata=METADATA, timeout=TIMEOUT)
    assert same.unchanged and same.revision == config.revision


def test_evaluate(channel, stubs, demo):
    rpb = stubs.rules_pb2
    rules = stubs.rules_grpc.RulesStub(channel)
    request = rpb.EvaluateRequest(options=[
        rpb.OptionChoice(key="max_video_bitrate_kbps", included=True, value_json=json.dumps(60000)),
    ])
    reply = rules.Evaluate(request, metadata=METADATA, timeout=TIMEOUT)
    assert not reply.valid
    assert "video-bitrate-bound" in [v.rule_key for v in reply.violations]
    assert reply.catalog_revision >= demo.revision


def test_errors_keep_their_status_and_message(channel, stubs, demo):
    pb = stubs.catalog_pb2
    catalog = stubs.catalog_grpc.CatalogStub(channel)
    with pytest.raises(grpc.RpcError) as error:
        catalog.GetOption(pb.OptionRef(key="no_such_option_here"), metadata=METADATA, timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no_such_option_here" in error.value.details()


def test_watch_receives_a_live_change(channel, catalog_server, stubs, demo):
    """Watch through the edge; the change is made directly on catalogd."""
    pb = stubs.catalog_pb2
    through_edge = stubs.catalog_grpc.CatalogStub(channel)
    config = through_edge.GetConfig(pb.GetConfigRequest(module_keys=["video"]),
                                    metadata=METADATA, timeout=TIMEOUT)
    group = config.modules[0].groups[0].group
    key = f"edge_watch_{uuid.uuid4().hex[:8]}"

    events: queue.Queue = queue.Queue()
    stream = through_edge.Watch(pb.WatchRequest(after=config.cursor), metadata=METADATA, timeout=60)

    def pump():
        try:
            for event in stream:
                events.put(event)
        except grpc.RpcError as error:
            events.put(error)

    threading.Thread(target=pump, daemon=True).start()
    try:
        # Let the stream sit idle first: nothing in the edge may end a silent Watch.
        time.sleep(1.0)
        assert events.empty(), f"unexpected event before the change: {events.get()}"
        with catalog_server.channel() as direct:
            stubs.catalog_grpc.CatalogStub(direct).CreateOption(pb.CreateOptionRequest(option=pb.Option(
                module_key="video", group_key=group.key, key=key, name="Edge watch test",
                type=pb.OPTION_TYPE_STRING, default_value="x")), metadata=METADATA, timeout=TIMEOUT)
        deadline = time.monotonic() + 30
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no event for {key} within 30 s through the edge; saw {seen}")
            try:
                event = events.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(event, grpc.RpcError):
                pytest.fail(f"the watch failed: {event.code()} {event.details()}")
            seen.append((event.entity, event.key))
            if event.entity == "option" and event.key == key:
                break
        assert event.state.option.default_value == "x"
    finally:
        stream.cancel()


def test_unknown_package_is_unimplemented(channel):
    """No route: the fallback's 404, which grpcio reports as UNIMPLEMENTED, at once."""
    call = channel.unary_unary("/stb.nothing.v1.Nothing/Get", request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as error:
        call(b"", timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED, error.value
    assert time.monotonic() - started < TIMEOUT / 2


def test_unknown_method_of_a_routed_package_is_unimplemented(channel):
    """Routed to the catalog, which answers UNIMPLEMENTED itself."""
    call = channel.unary_unary("/stb.catalog.v1.Catalog/NoSuchMethod", request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as error:
        call(b"", timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED, error.value


# -- HTTP/1.1 and TLS ----------------------------------------------------------------------


def test_http11_unknown_path_is_404(edge):
    assert curl("--http1.1", f"http://{HOST}:{edge.http_port}/nothing/here") == ("404", "1.1")
    assert curl("--http1.1", "-X", "POST", "-H", "content-type: application/json", "-d", "{}",
                f"http://{HOST}:{edge.http_port}/stb.nothing.v1.Nothing/Get") == ("404", "1.1")


def test_tls_offers_h2_and_http11(edge):
    url = f"https://localhost:{edge.tls_port}/nothing/here"
    assert curl("--cacert", str(edge.cert), "--http2", url) == ("404", "2")
    assert curl("--cacert", str(edge.cert), "--http1.1", url) == ("404", "1.1")


def test_h2c_prior_knowledge_on_the_cleartext_port(edge):
    assert curl("--http2-prior-knowledge", f"http://{HOST}:{edge.http_port}/nothing") == ("404", "2")


# -- Connect and metrics through the edge --------------------------------------------------


def curl_body(*args: str) -> tuple[str, bytes]:
    """(HTTP status, body) of one curl request."""
    result = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", "--max-time", "10", *args], capture_output=True, timeout=30)
    assert result.returncode == 0, f"curl {' '.join(args)} failed: {result.stderr!r}"
    body, _, status = result.stdout.rpartition(b"\n")
    return status.decode(), body


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_connect_json_through_the_edge(edge, demo, scheme):
    port = edge.http_port if scheme == "http" else edge.tls_port
    tls = ["--cacert", str(edge.cert)] if scheme == "https" else []
    status, body = curl_body(*tls, "--http1.1", "-H", "content-type: application/json", "-d", "{}",
                             "-H", f"authorization: {dict(METADATA)['authorization']}",
                             f"{scheme}://localhost:{port}/stb.catalog.v1.Catalog/GetConfig")
    assert status == "200", body
    config = json.loads(body)
    assert int(config["revision"]) >= demo.revision
    assert "video" in [m["module"]["key"] for m in config["modules"]]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_connect_errors_through_the_edge(edge, demo, scheme):
    """A Connect error keeps its HTTP status and JSON body over HTTP/1.1 and TLS."""
    port = edge.http_port if scheme == "http" else edge.tls_port
    tls = ["--cacert", str(edge.cert)] if scheme == "https" else []
    status, body = curl_body(*tls, "--http1.1", "-H", "content-type: application/proto", "--data-binary", "",
                             f"{scheme}://localhost:{port}/stb.catalog.v1.Catalog/NoSuchMethod")
    assert status == "501", body
    assert json.loads(body)["code"] == "unimplemented"


@pytest.mark.parametrize("service", ["catalog", "rules"])
def test_metrics_per_service_through_the_edge(edge, demo, service):
    status, body = curl_body("--http1.1", f"http://{HOST}:{edge.http_port}/metrics/{service}")
    assert status == "200", body
    text = body.decode()
    assert "stb_rpc_server_connections" in text
    if service == "rules":
        assert "stb_replica_revision" in text  # the rules service's own gauge: the route is right
    else:
        assert "stb_replica_revision" not in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; scripts/install-deps installs it)")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_certificate_is_made_once(tmp_path):
    """The self-signed pair is made on the first start and kept on the next; the key is
    private."""
    directory = tmp_path / "state"
    first = Edge(directory, "127.0.0.1:1", "127.0.0.1:1").start()
    assert first.terminate() == 0
    key, cert = directory / "edge.key", directory / "edge.crt"
    assert key.stat().st_mode & 0o077 == 0, oct(key.stat().st_mode)
    before = cert.read_bytes()
    second = Edge(directory, "127.0.0.1:1", "127.0.0.1:1").start()
    assert second.terminate() == 0
    assert cert.read_bytes() == before


# -- configuration -----------------------------------------------------------------------


# The gateway is not started here (test_gateway.py runs it): only its routes are checked.
GATEWAY_ADDR = "127.0.0.1:50050"
# The module's edge names the project service's default address; the real projectd is
# reached through an edge of its own (test_project_through_the_edge).
PROJECT_ADDR = "127.0.0.1:50053"


def test_bad_backend_address_stops_start_up(tmp_path):
    result = subprocess.run(
        [str(EDGE)], env={**os.environ, "STB_EDGE_DIR": str(tmp_path), "STB_CATALOG_ADDR": "no-port"},
        capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "catalog address must be host:port" in result.stderr


def test_generated_configuration_routes_by_package(edge, catalog_server, rules_server):
    conf = (edge.dir / "nghttpx.conf").read_text()
    lines = [line for line in conf.splitlines() if line and not line.startswith("#")]
    catalog = catalog_server.addr.replace(":", ",")
    rules = rules_server.addr.replace(":", ",")
    assert f"backend={catalog};/stb.catalog.v1.*;proto=h2" in lines
    assert f"backend={rules};/stb.rules.v1.*;proto=h2" in lines
    assert f"backend={catalog};/grpc.health.v1.Health/;proto=h2" in lines
    assert f"backend={catalog};/metrics/catalog;proto=h2" in lines
    assert f"backend={rules};/metrics/rules;proto=h2" in lines
    project = PROJECT_ADDR.replace(":", ",")
    assert f"backend={project};/stb.project.v1.*;proto=h2" in lines
    assert f"backend={project};/metrics/project;proto=h2" in lines
    gateway = f"127.0.0.1,{edge.fallback_port}"
    assert f"backend={gateway};/stb.gateway.v1.*;proto=h2" in lines
    assert f"backend={gateway};/metrics/gateway;proto=h2" in lines
    assert f"backend=127.0.0.1,{edge.fallback_port};/;proto=h2" in lines
    assert not any("@" in line for line in lines), "a placeholder was left in the configuration"


def test_project_through_the_edge(catalog_server, rules_server, project_server, tmp_path):
    """An edge in front of a real projectd: a grpcio call (ListProjects, an empty request)
    and the project service's metrics reach it over h2c and HTTP/1.1."""
    edge = Edge(tmp_path / "state", catalog_server.addr, rules_server.addr,
                STB_GATEWAY_ADDR=GATEWAY_ADDR, STB_PROJECT_ADDR=project_server.addr).start()
    try:
        with edge.channel("h2c") as channel:
            call = channel.unary_unary("/stb.project.v1.Projects/ListProjects",
                                       request_serializer=lambda b: b, response_deserializer=lambda b: b)
            reply, state = call.with_call(b"", metadata=METADATA, timeout=TIMEOUT)
            assert state.code() == grpc.StatusCode.OK and isinstance(reply, bytes)
        status, body = curl_body("--http1.1", f"http://{HOST}:{edge.http_port}/metrics/project")
        assert status == "200" and b"stb_rpc_server_connections" in body, body[:200]
    finally:
        assert edge.terminate() == 0, edge.log_tail()
