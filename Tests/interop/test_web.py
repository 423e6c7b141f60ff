"""The gateway's browser routes through a real edge (scripts/edge: nghttpx), over HTTP/1.1
in cleartext and over TLS, with Python's own http.client as the browser: the dashboard's
static files and their security headers, path traversal refused, sign-in with cookies
(/auth/login, refresh, logout, session), Connect calls to any service authenticated by the
cookie (and gRPC not), and /events: Subscribe as server-sent events (snapshot, delta after
an stbctl change, resume with Last-Event-ID, resync, heartbeats, the error event when an
admin ends the session, the stream quota).

Real gatewayd, catalogd, rulesd and projectd on fresh databases (test_realtime.Platform),
GATEWAY_HEARTBEAT_SECONDS=1 and a viewer quota of 3 streams."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest

from conftest import HOST
from test_edge import Edge
from test_realtime import ADMIN, ADMIN_PASSWORD, Platform, pb, platform_databases  # noqa: F401 (pb: a fixture)

pytestmark = [
    pytest.mark.skipif(
        not (os.environ.get("STB_GATEWAYD_BIN") and os.environ.get("STB_CATALOGD_BIN")
             and os.environ.get("STB_RULESD_BIN") and os.environ.get("STB_STBCTL_BIN")),
        reason="STB_GATEWAYD_BIN, STB_CATALOGD_BIN, STB_RULESD_BIN and STB_STBCTL_BIN must be set"),
    pytest.mark.skipif(not (shutil.which("nghttpx") and shutil.which("nghttpd")),
                       reason="nghttpx or nghttpd is not installed (scripts/install-deps)"),
]

TIMEOUT = 20
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
INDEX = b"<!doctype html><title>STB</title><script src=\"app.js\"></script>\n"
VIEWER, VIEWER_PASSWORD = "webviewer", "viewer password 0123"


class WebPlatform(Platform):
    def __init__(self, tmp, urls, web_dir):
        super().__init__(tmp, urls)
        self.web_dir = web_dir

    def gateway_env(self):
        return {**super().gateway_env(), "GATEWAY_WEB_DIR": str(self.web_dir), "GATEWAY_LOGIN_LOCK_AFTER": "3"}


@pytest.fixture(scope="module")
def web_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    site = root / "site"
    (site / "sub").mkdir(parents=True)
    (site / "index.html").write_bytes(INDEX)
    (site / "app.js").write_text("console.log('stb');\n")
    (site / "style.css").write_text("body { margin: 0 }\n")
    (site / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>\n")
    (site / "sub" / "page.json").write_text("{}\n")
    (site / ".hidden").write_text("hidden\n")
    (root / "secret.txt").write_text("outside the web directory\n")
    (site / "link.txt").symlink_to(root / "secret.txt")
    return site


@pytest.fixture(scope="module")
def platform(tmp_path_factory, web_dir):
    tmp = tmp_path_factory.mktemp("webplatform")
    with platform_databases("web") as urls:
        platform = WebPlatform(tmp, urls, web_dir).start()
        try:
            yield platform
        finally:
            platform.stop()


@pytest.fixture(scope="module")
def edge(platform, tmp_path_factory):
    server = Edge(tmp_path_factory.mktemp("webedge") / "state", platform.addr("catalog"), platform.addr("rules"),
                  STB_GATEWAY_ADDR=platform.addr("gateway"), STB_PROJECT_ADDR=platform.addr("project")).start()
    yield server
    assert server.terminate() == 0, server.log_tail()


# -- HTTP helpers ----------------------------------------------------------------------------


class Response:
    def __init__(self, raw: http.client.HTTPResponse):
        self.status = raw.status
        self.headers = raw.getheaders()
        self.body = raw.read()

    def header(self, name):
        values = self.all(name)
        return values[0] if values else None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def cookies(self):
        """name -> (value, attributes lowercased) of each set-cookie."""
        out = {}
        for line in self.all("set-cookie"):
            parts = [p.strip() for p in line.split(";")]
            name, _, value = parts[0].partition("=")
            out[name] = (value, [p.lower() for p in parts[1:]])
        return out


def connection(edge, tls=False, timeout=TIMEOUT):
    if tls:
        context = ssl.create_default_context(cafile=str(edge.cert))
        return http.client.HTTPSConnection("localhost", edge.tls_port, context=context, timeout=timeout)
    return http.client.HTTPConnection(HOST, edge.http_port, timeout=timeout)


def request(edge, method, path, body=None, headers=None, tls=False):
    conn = connection(edge, tls)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        return Response(conn.getresponse())
    finally:
        conn.close()


def login(edge, username=ADMIN, password=ADMIN_PASSWORD, tls=False):
    return request(edge, "POST", "/auth/login", body=json.dumps({"username": username, "password": password}),
                   headers={"content-type": "application/json"}, tls=tls)


def cookie_header(response, *names):
    cookies = response.cookies()
    return "; ".join(f"{name}={cookies[name][0]}" for name in (names or cookies))


def connect_call(edge, path, message, cookie=None, tls=False):
    headers = {"content-type": "application/json"}
    if cookie:
        headers["cookie"] = cookie
    return request(edge, "POST", path, body=json.dumps(message), headers=headers, tls=tls)


def assert_security_headers(response):
    assert response.header("content-security-policy") == CSP
    assert response.header("x-content-type-options") == "nosniff"
    assert response.header("referrer-policy") == "no-referrer"
    assert response.header("x-frame-options") == "DENY"


@pytest.fixture(scope="module")
def admin_cookie(edge):
    response = login(edge)
    assert response.status == 200, response.body
    return cookie_header(response, "stb_access")


@pytest.fixture(scope="module")
def viewer(edge, admin_cookie):
    created = connect_call(edge, "/stb.gateway.v1.Auth/CreateUser",
                           {"username": VIEWER, "role": "ROLE_VIEWER", "password": VIEWER_PASSWORD}, cookie=admin_cookie)
    assert created.status == 200, created.body
    response = login(edge, VIEWER, VIEWER_PASSWORD)
    assert response.status == 200, response.body
    return cookie_header(response, "stb_access")


def stbctl(platform, *args, token):
    env = {**os.environ, "STB_TOKEN": token, "STB_CATALOG_ADDR": platform.addr("catalog"),
           "STB_GATEWAY_ADDR": platform.addr("gateway")}
    result = subprocess.run([os.environ["STB_STBCTL_BIN"], *args], capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def token_of(cookie):
    return cookie.split("=", 1)[1]


def create_module(platform, admin_cookie):
    key = f"w{uuid.uuid4().hex[:10]}"
    stbctl(platform, "create", "module", key, "--name", key, token=token_of(admin_cookie))
    return key


# -- server-sent events ----------------------------------------------------------------------


class EventStream:
    """GET /events read on a thread: events as dicts (event, id, data), comments apart."""

    def __init__(self, edge, topics, cookie=None, last_event_id=None, tls=False, headers=None):
        self.conn = connection(edge, tls, timeout=60)
        sent = {"accept": "text/event-stream", **(headers or {})}
        if cookie:
            sent["cookie"] = cookie
        if last_event_id:
            sent["last-event-id"] = last_event_id
        self.conn.request("GET", f"/events?topics={topics}", headers=sent)
        self.response = self.conn.getresponse()
        self.events: list[dict] = []
        self.comments: list[str] = []
        self.retry = None
        self.ended = False
        self.lock = threading.Condition()
        if self.response.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        current: dict = {}
        try:
            while True:
                line = self.response.readline()
                if not line:
                    break
                line = line.decode().rstrip("\n")
                with self.lock:
                    if line == "":
                        if current:
                            if "data" in current:
                                current["data"] = json.loads(current["data"])
                            self.events.append(current)
                            current = {}
                            self.lock.notify_all()
                    elif line.startswith(":"):
                        self.comments.append(line[1:].strip())
                        self.lock.notify_all()
                    else:
                        field, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if field == "retry":
                            self.retry = int(value)
                        else:
                            current[field] = value
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            # The test closed the connection under the reader.
            pass
        with self.lock:
            self.ended = True
            self.lock.notify_all()

    def wait(self, predicate, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.ended:
                    raise AssertionError(f"timed out (ended={self.ended}); events {[e.get('event') for e in self.events]}")
                self.lock.wait(remaining)

    def of(self, kind):
        with self.lock:
            return [e for e in self.events if e.get("event") == kind]

    def last_id(self):
        with self.lock:
            return [e["id"] for e in self.events if "id" in e][-1]

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()


def delta_keys(stream):
    return [e["data"]["key"] for e in stream.of("delta")]


# -- static files ------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["http1.1", "tls"])
def test_static_files_with_types_and_security_headers(edge, tls):
    index = request(edge, "GET", "/", tls=tls)
    assert index.status == 200 and index.body == INDEX
    assert index.header("content-type") == "text/html; charset=utf-8"
    assert index.header("cache-control") == "no-cache"
    assert_security_headers(index)
    for path, kind in (("/index.html", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css"),
                       ("/logo.svg", "image/svg+xml"), ("/sub/page.json", "application/json")):
        response = request(edge, "GET", path, tls=tls)
        assert response.status == 200, path
        assert response.header("content-type").split(";")[0] == kind, path
        assert_security_headers(response)
    head = request(edge, "HEAD", "/app.js", tls=tls)
    assert head.status == 200 and head.body == b"" and head.header("content-length") == str(len("console.log('stb');\n"))


def test_etag_and_if_none_match(edge):
    first = request(edge, "GET", "/app.js")
    etag = first.header("etag")
    assert etag and etag.startswith('"')
    again = request(edge, "GET", "/app.js", headers={"if-none-match": etag})
    assert again.status == 304 and again.body == b""
    assert_security_headers(again)
    other = request(edge, "GET", "/app.js", headers={"if-none-match": '"something-else"'})
    assert other.status == 200


def test_unknown_paths_and_methods(edge):
    missing = request(edge, "GET", "/no/such/file.js")
    assert missing.status == 404 and missing.header("content-type").startswith("text/plain")
    assert_security_headers(missing)
    assert request(edge, "POST", "/index.html", body="x", headers={"content-type": "text/plain"}).status == 405


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/sub/..%2f..%2fsecret.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
    "/link.txt", "/sub/", "/sub", "/.hidden", "/%00", "/..%5csecret.txt",
])
def test_traversal_listing_and_hidden_files_refused(edge, path):
    response = request(edge, "GET", path)
    assert response.status == 404, (path, response.status, response.body[:100])
    assert b"outside the web directory" not in response.body


# -- sign-in with cookies ----------------------------------------------------------------------


def test_login_sets_httponly_strict_cookies(edge):
    response = login(edge)
    assert response.status == 200, response.body
    body = response.json()
    assert body["user"]["username"] == ADMIN and body["user"]["role"] == "admin" and body["user"]["id"]
    assert body["accessExpiresAtMs"] > time.time() * 1000
    assert "access" not in response.body.decode().lower().replace("accessexpiresatms", "")
    cookies = response.cookies()
    access, refresh = cookies["stb_access"], cookies["stb_refresh"]
    assert access[0] and refresh[0]
    for attributes in (access[1], refresh[1]):
        assert "httponly" in attributes and "samesite=strict" in attributes and "secure" not in attributes
    assert "path=/" in access[1] and "path=/auth" in refresh[1]
    assert 500 <= int(next(a for a in access[1] if a.startswith("max-age="))[8:]) <= 600
    assert int(next(a for a in refresh[1] if a.startswith("max-age="))[8:]) > 86400
    assert_security_headers(response)


def test_login_over_tls_adds_secure(edge):
    response = login(edge, tls=True)
    assert response.status == 200, response.body
    for _, attributes in response.cookies().values():
        assert "secure" in attributes


def test_login_refusals(edge):
    wrong = login(edge, ADMIN, "not the password at all")
    assert wrong.status == 401 and wrong.json()["code"] == "unauthenticated" and not wrong.all("set-cookie")
    form = request(edge, "POST", "/auth/login", body="username=root&password=x",
                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status == 415
    assert request(edge, "GET", "/auth/login").status == 405
    bad = request(edge, "POST", "/auth/login", body="[]", headers={"content-type": "application/json"})
    assert bad.status == 400 and bad.json()["code"] == "invalid_argument"


def test_login_is_throttled_as_the_rpc(edge, platform, pb):
    """Three failures lock the username (GATEWAY_LOGIN_LOCK_AFTER=3): 429 with retry-after,
    and the failures are the Login RPC's own activity rows."""
    name = f"nobody{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        assert login(edge, name, "wrong password 0123").status == 401
    locked = login(edge, name, "wrong password 0123")
    assert locked.status == 429 and locked.json()["code"] == "resource_exhausted"
    assert int(locked.header("retry-after")) > 0
    with grpc.insecure_channel(platform.addr("gateway")) as channel:
        with pytest.raises(grpc.RpcError) as error:
            pb.gateway_grpc.AuthStub(channel).Login(pb.gateway.LoginRequest(username=name, password="x"), timeout=TIMEOUT)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_refresh_logout_and_session(edge):
    signed_in = login(edge)
    both = cookie_header(signed_in)
    session = request(edge, "GET", "/auth/session", headers={"cookie": cookie_header(signed_in, "stb_access")})
    assert session.status == 200 and session.json()["user"]["username"] == ADMIN
    assert request(edge, "GET", "/auth/session").status == 401

    refreshed = request(edge, "POST", "/auth/refresh", body="{}", headers={"content-type": "application/json", "cookie": both})
    assert refreshed.status == 200, refreshed.body
    rotated = refreshed.cookies()
    assert rotated["stb_refresh"][0] != signed_in.cookies()["stb_refresh"][0]
    assert rotated["stb_access"][0]
    assert request(edge, "POST", "/auth/refresh", body="{}", headers={"content-type": "text/plain", "cookie": both}).status == 415

    out = request(edge, "POST", "/auth/logout", headers={"cookie": cookie_header(refreshed)})
    assert out.status == 204
    for _, attributes in out.cookies().values():
        assert "max-age=0" in attributes
    again = request(edge, "POST", "/auth/refresh", body="{}",
                    headers={"content-type": "application/json", "cookie": cookie_header(refreshed)})
    assert again.status == 401 and again.json()["code"] == "unauthenticated"
    assert all("max-age=0" in attributes for _, attributes in again.cookies().values())
    assert set(again.cookies()) == {"stb_access", "stb_refresh"}


# -- cookie authentication of RPCs ------------------------------------------------------------


def test_connect_calls_authenticated_by_the_cookie(edge, admin_cookie):
    config = connect_call(edge, "/stb.catalog.v1.Catalog/GetConfig", {}, cookie=admin_cookie)
    assert config.status == 200, config.body
    me = connect_call(edge, "/stb.gateway.v1.Auth/WhoAmI", {}, cookie=admin_cookie, tls=True)
    assert me.status == 200 and me.json()["username"] == ADMIN
    anonymous = connect_call(edge, "/stb.catalog.v1.Catalog/GetConfig", {})
    assert anonymous.status == 401 and anonymous.json()["code"] == "unauthenticated"


def test_grpc_with_only_a_cookie_is_refused(edge, admin_cookie):
    with edge.channel("h2c") as channel:
        call = channel.unary_unary("/stb.catalog.v1.Catalog/GetConfig", request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as error:
            call(b"", metadata=[("cookie", admin_cookie)], timeout=TIMEOUT)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- /events -----------------------------------------------------------------------------------


def test_events_refusals_before_the_stream(edge, admin_cookie):
    assert EventStream(edge, "catalog").response.status == 401
    bad = EventStream(edge, "catalog,nonsense", cookie=admin_cookie)
    assert bad.response.status == 400 and json.loads(bad.response.read())["code"] == "invalid_argument"
    token = EventStream(edge, "catalog", cookie=admin_cookie, last_event_id="not-a-token")
    assert token.response.status == 400
    wrong = EventStream(edge, "catalog", headers={"authorization": "Bearer nope"})
    assert wrong.response.status == 401


@pytest.mark.parametrize("tls", [False, True], ids=["http1.1", "tls"])
def test_events_snapshot_then_delta_and_heartbeat(edge, platform, admin_cookie, tls):
    stream = EventStream(edge, "catalog,alarms", cookie=admin_cookie, tls=tls)
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("content-type") == "text/event-stream"
        assert stream.response.getheader("cache-control") == "no-cache"
        stream.wait(lambda s: len(s.of("snapshot")) == 2)
        assert 1000 <= stream.retry <= 3000
        catalog = next(e for e in stream.of("snapshot") if e["data"]["topic"] == "catalog")
        assert catalog["id"] and isinstance(catalog["data"]["payload"], dict)
        key = create_module(platform, admin_cookie)
        stream.wait(lambda s: key in delta_keys(s))
        delta = next(e for e in stream.of("delta") if e["data"]["key"] == key)
        assert delta["data"]["topic"] == "catalog" and delta["data"]["upstream"] == "catalog"
        assert delta["data"]["entity"] == "module" and delta["data"]["action"]
        assert key in json.dumps(delta["data"]["event"]) and delta["id"]
        stream.wait(lambda s: any(c.startswith("heartbeat ") for c in s.comments))
    finally:
        stream.close()


def test_resume_with_last_event_id_gets_exactly_the_missed_events(edge, platform, admin_cookie):
    first = EventStream(edge, "catalog", cookie=admin_cookie)
    try:
        first.wait(lambda s: s.of("snapshot"))
        before = create_module(platform, admin_cookie)
        first.wait(lambda s: before in delta_keys(s))
        last = first.last_id()
    finally:
        first.close()
    missed = [create_module(platform, admin_cookie) for _ in range(3)]
    resumed = EventStream(edge, "catalog", cookie=admin_cookie, last_event_id=last)
    try:
        resumed.wait(lambda s: all(k in delta_keys(s) for k in missed))
        after = create_module(platform, admin_cookie)
        resumed.wait(lambda s: after in delta_keys(s))
        keys = [k for k in delta_keys(resumed) if k.startswith("w")]
        assert keys == missed + [after], keys
        assert not resumed.of("snapshot") and not resumed.of("resync")
    finally:
        resumed.close()
    # A new EventSource cannot set the header: the same resume from the query.
    again = EventStream(edge, f"catalog&lastEventId={last}", cookie=admin_cookie)
    try:
        again.wait(lambda s: after in delta_keys(s))
        assert [k for k in delta_keys(again) if k.startswith("w")] == missed + [after]
        assert not again.of("snapshot")
    finally:
        again.close()


def test_resume_with_a_token_of_another_deployment_resyncs(edge, admin_cookie):
    first = EventStream(edge, "catalog", cookie=admin_cookie)
    try:
        first.wait(lambda s: s.of("snapshot"))
        token = first.last_id()
    finally:
        first.close()
    text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    version, _, positions = text.split("|")
    foreign = base64.urlsafe_b64encode(f"{version}|deadbeefdeadbeef|{positions}".encode()).decode().rstrip("=")
    stream = EventStream(edge, "catalog", cookie=admin_cookie, last_event_id=foreign)
    try:
        stream.wait(lambda s: s.of("resync") and s.of("snapshot"))
        resync = stream.of("resync")[0]
        assert resync["data"]["topics"] == ["catalog"] and "another deployment" in resync["data"]["reason"]
        assert [e["event"] for e in stream.events][:2] == ["resync", "snapshot"]
    finally:
        stream.close()


def test_ended_by_an_admin_sends_an_error_event(edge, platform, admin_cookie, viewer):
    stream = EventStream(edge, "catalog", cookie=viewer)
    try:
        stream.wait(lambda s: s.of("snapshot"))
        gateway = ("--gateway-addr", platform.addr("gateway"))
        listing = stbctl(platform, "sessions", "--open", *gateway, token=token_of(admin_cookie))
        ids = [line.split()[0] for line in listing.splitlines() if VIEWER in line]
        assert ids, listing
        for session in ids:
            stbctl(platform, "sessions", "--end", session.lstrip("#"), *gateway, token=token_of(admin_cookie))
        stream.wait(lambda s: s.of("error"))
        error = stream.of("error")[0]["data"]
        assert error["code"] == "canceled" and error["message"], error
        stream.wait(lambda s: s.ended)
    finally:
        stream.close()


def test_stream_quota_ends_the_extra_stream_with_an_error(edge, viewer):
    streams = []
    try:
        for _ in range(3):
            stream = EventStream(edge, "catalog", cookie=viewer)
            streams.append(stream)
            stream.wait(lambda s: s.of("snapshot"))
        extra = EventStream(edge, "catalog", cookie=viewer)
        streams.append(extra)
        extra.wait(lambda s: s.of("error"))
        assert extra.of("error")[0]["data"]["code"] == "resource_exhausted"
        assert not extra.of("snapshot")
    finally:
        for stream in streams:
            stream.close()


def test_token_expiry_sends_an_error_event(edge, platform):
    """A gateway whose access tokens live 3 s: the stream ends with an `unauthenticated`
    error event when the token expires. (Last: it restarts the gateway, then restores it.)"""
    platform.servers["gateway"].terminate(timeout=15)
    platform.start_gateway(GATEWAY_ACCESS_TTL_SECONDS="3")
    try:
        cookie = cookie_header(login(edge), "stb_access")
        stream = EventStream(edge, "catalog", cookie=cookie)
        try:
            stream.wait(lambda s: s.of("snapshot"))
            stream.wait(lambda s: s.of("error"), timeout=15)
            error = stream.of("error")[0]["data"]
            assert error["code"] == "unauthenticated" and "expired" in error["message"], error
            stream.wait(lambda s: s.ended)
        finally:
            stream.close()
    finally:
        platform.servers["gateway"].terminate(timeout=15)
        platform.start_gateway()
