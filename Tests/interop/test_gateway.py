"""The gateway (gatewayd) through a stock grpcio client with generated stubs: sign-in,
access tokens a stock JWT library (PyJWT) verifies with the JWKS from GetKeys, tokens we
did not sign refused, refresh rotation and reuse detection, service accounts, login
throttling and user administration.

Needs $STB_GATEWAYD_BIN and the local cluster (`eval "$(scripts/db env)"`). The module
gets a fresh gateway database, bootstraps its first admin with `gatewayd
bootstrap-admin`, and runs one gatewayd with a short refresh overlap and a low lock
threshold, so the tests run in seconds.
"""

from __future__ import annotations

import importlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import HOST, PROTOS, REPO, CatalogServer, _free_port, fresh_database

pytestmark = pytest.mark.skipif(
    not os.environ.get("STB_GATEWAYD_BIN"), reason="STB_GATEWAYD_BIN must be set: these tests need gatewayd")

TIMEOUT = 30
ADMIN = "admin"
ADMIN_PASSWORD = "correct horse battery staple"
SERVICE_SECRET = "rules-secret-0123456789abcdef"
OVERLAP_SECONDS = 2
LOCK_AFTER = 4
AGENT = (("stb-user-agent", "pytest-gateway"),)


class GatewayServer(CatalogServer):
    name = "gatewayd"
    ready_prefix = b"gatewayd listening on "


def gatewayd_binary() -> Path:
    return Path(os.environ["STB_GATEWAYD_BIN"]).resolve()


@pytest.fixture(scope="module")
def gpb(stubs, tmp_path_factory):
    """stb.gateway.v1 messages and stubs (stb.common.v1 comes from the `stubs` fixture)."""
    out = tmp_path_factory.mktemp("gateway-stubs")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}",
                    f"--grpc_python_out={out}", "stb/gateway/v1/gateway.proto"], check=True, timeout=60)
    sys.path.insert(0, str(out))
    try:
        pb2 = importlib.import_module("stb.gateway.v1.gateway_pb2")
        pb2_grpc = importlib.import_module("stb.gateway.v1.gateway_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    pb2.grpc = pb2_grpc
    return pb2


@pytest.fixture(scope="module")
def gateway_database():
    with fresh_database(f"gateway_it_{os.getpid()}", "gateway") as url:
        yield url


@pytest.fixture(scope="module")
def gateway_server(gateway_database, tmp_path_factory):
    env = {
        "GATEWAY_HOST": HOST,
        "GATEWAY_PORT": str(_free_port()),
        "GATEWAY_DATABASE_URL": gateway_database,
        "GATEWAY_MIGRATIONS_DIR": str(REPO / "services" / "gateway" / "migrations"),
        "GATEWAY_SERVICE_ACCOUNTS": f"rules:{SERVICE_SECRET}",
        "GATEWAY_REFRESH_OVERLAP_SECONDS": str(OVERLAP_SECONDS),
        "GATEWAY_LOGIN_LOCK_AFTER": str(LOCK_AFTER),
        "GATEWAY_LOGIN_PEER_LOCK_AFTER": "1000",
        "GATEWAY_LOGIN_LOCK_SECONDS": "60",
        "GATEWAY_KEY_ENCRYPTION_KEY": "00" * 32,
    }
    bootstrap = subprocess.run([str(gatewayd_binary()), "bootstrap-admin", ADMIN], input=ADMIN_PASSWORD + "\n",
                               env={**os.environ, **env}, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert bootstrap.returncode == 0, bootstrap.stderr
    # A second bootstrap must refuse: the users table is no longer empty.
    again = subprocess.run([str(gatewayd_binary()), "bootstrap-admin", "intruder"], input="another password 123\n",
                           env={**os.environ, **env}, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert again.returncode != 0 and "users exist already" in again.stderr, again.stderr
    server = GatewayServer(gatewayd_binary(), tmp_path_factory.mktemp("gatewayd") / "gatewayd.log", env).start()
    yield server
    alive = server.alive()
    log = server.log_path.read_text(errors="replace")
    code = server.terminate(timeout=10)
    assert alive, f"gatewayd died during the tests\n{server.log_tail()}"
    assert code == 0, f"gatewayd exited with {code} after SIGTERM\n{server.log_tail()}"
    # Nothing secret ever reaches the log.
    for secret in (ADMIN_PASSWORD, SERVICE_SECRET, "wrong password 0", "viewer password 1"):
        assert secret not in log


@pytest.fixture(scope="module")
def auth(gateway_server, gpb):
    with gateway_server.raw_channel() as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield gpb.grpc.AuthStub(channel)


def bearer(token: str):
    return (("authorization", f"Bearer {token}"),) + AGENT


def login(auth, gpb, username=ADMIN, password=ADMIN_PASSWORD):
    return auth.Login(gpb.LoginRequest(username=username, password=password), metadata=AGENT, timeout=TIMEOUT)


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def jwks(auth, gpb) -> dict:
    reply = auth.GetKeys(gpb.GetKeysRequest(), timeout=TIMEOUT)
    return {"keys": [{"kty": k.kty, "crv": k.crv, "x": k.x, "kid": k.kid, "use": k.use, "alg": k.alg} for k in reply.keys]}


# -- tokens --------------------------------------------------------------------------------


def test_pyjwt_verifies_access_tokens_with_the_jwks(auth, gpb):
    reply = login(auth, gpb)
    assert reply.user.username == ADMIN and reply.user.role == gpb.ROLE_ADMIN
    header = jwt.get_unverified_header(reply.access_token)
    assert header["alg"] == "EdDSA" and header["kid"]
    keys = {k["kid"]: jwt.PyJWK(k) for k in jwks(auth, gpb)["keys"]}
    claims = jwt.decode(reply.access_token, keys[header["kid"]], algorithms=["EdDSA"], audience="stb",
                        issuer="stb-gateway", options={"require": ["exp", "iat", "nbf", "sub", "jti"]})
    assert claims["sub"] == reply.user.id
    assert claims["name"] == ADMIN and claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 600
    assert claims["exp"] * 1000 == reply.access_expires_at_ms
    # The refresh token is 32 random bytes, base64url.
    assert len(reply.refresh_token) == 43


def test_tokens_we_did_not_sign_are_refused(auth, gpb):
    reply = login(auth, gpb)
    good = jwt.decode(reply.access_token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(reply.access_token)["kid"]
    assert auth.WhoAmI(gpb.WhoAmIRequest(), metadata=bearer(reply.access_token), timeout=TIMEOUT).username == ADMIN
    stranger = Ed25519PrivateKey.generate()
    forged = [
        jwt.encode(good, stranger, algorithm="EdDSA", headers={"kid": kid}),       # our kid, another key
        jwt.encode(good, stranger, algorithm="EdDSA", headers={"kid": "other"}),   # an unknown kid
        jwt.encode(good, None, algorithm="none", headers={"kid": kid}),            # alg none
        jwt.encode(good, "shared secret that is long enough!!", algorithm="HS256", headers={"kid": kid}),
    ]
    for token in forged:
        assert code_of(lambda: auth.WhoAmI(gpb.WhoAmIRequest(), metadata=bearer(token), timeout=TIMEOUT)) \
            == grpc.StatusCode.UNAUTHENTICATED, jwt.get_unverified_header(token)
    # No token: the method needs one.
    assert code_of(lambda: auth.WhoAmI(gpb.WhoAmIRequest(), timeout=TIMEOUT)) == grpc.StatusCode.UNAUTHENTICATED


# -- refresh -------------------------------------------------------------------------------


def refresh(auth, gpb, token):
    return auth.Refresh(gpb.RefreshRequest(refresh_token=token), metadata=AGENT, timeout=TIMEOUT)


def test_refresh_rotates_and_reuse_revokes_the_family(auth, gpb):
    first = login(auth, gpb)
    second = refresh(auth, gpb, first.refresh_token)
    assert second.refresh_token != first.refresh_token and second.access_token != first.access_token
    # Inside the overlap the used token still works (a concurrent refresh): a fresh pair.
    concurrent = refresh(auth, gpb, first.refresh_token)
    assert concurrent.refresh_token not in (first.refresh_token, second.refresh_token)
    third = refresh(auth, gpb, second.refresh_token)
    time.sleep(OVERLAP_SECONDS + 0.5)
    # After the overlap, presenting a used token again is reuse: refused, and the whole
    # family ends, including the newest token of the chain.
    assert code_of(lambda: refresh(auth, gpb, first.refresh_token)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: refresh(auth, gpb, third.refresh_token)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: refresh(auth, gpb, concurrent.refresh_token)) == grpc.StatusCode.UNAUTHENTICATED
    # Another session of the same user is untouched.
    other = login(auth, gpb)
    assert refresh(auth, gpb, other.refresh_token).user.username == ADMIN


def test_logout_ends_the_session(auth, gpb):
    session = login(auth, gpb)
    auth.Logout(gpb.LogoutRequest(refresh_token=session.refresh_token), metadata=AGENT, timeout=TIMEOUT)
    assert code_of(lambda: refresh(auth, gpb, session.refresh_token)) == grpc.StatusCode.UNAUTHENTICATED
    # Logging out with an unknown token answers the same.
    auth.Logout(gpb.LogoutRequest(refresh_token="nonsense"), timeout=TIMEOUT)


# -- service accounts ------------------------------------------------------------------------


def test_service_login(auth, gpb):
    reply = auth.ServiceLogin(gpb.ServiceLoginRequest(service="rules", secret=SERVICE_SECRET), timeout=TIMEOUT)
    claims = jwt.decode(reply.access_token, options={"verify_signature": False})
    assert claims["sub"] == "service:rules" and claims["role"] == "service" and claims["name"] == "rules"
    assert reply.refresh_token == ""
    for service, secret in (("rules", SERVICE_SECRET + "x"), ("catalog", SERVICE_SECRET), ("rules", "")):
        assert code_of(lambda: auth.ServiceLogin(gpb.ServiceLoginRequest(service=service, secret=secret), timeout=TIMEOUT)) \
            == grpc.StatusCode.UNAUTHENTICATED
    # A service token is not an admin's.
    assert code_of(lambda: auth.ListUsers(gpb.ListUsersRequest(), metadata=bearer(reply.access_token), timeout=TIMEOUT)) \
        == grpc.StatusCode.PERMISSION_DENIED


# -- administration --------------------------------------------------------------------------


def test_admin_manages_users_and_the_activity_log_records_it(auth, gpb):
    admin = login(auth, gpb)
    created = auth.CreateUser(gpb.CreateUserRequest(username="Viewer1", display_name="V", email="v@example.com",
                                                    role=gpb.ROLE_VIEWER, password="viewer password 1"),
                              metadata=bearer(admin.access_token), timeout=TIMEOUT)
    assert created.username == "viewer1" and created.role == gpb.ROLE_VIEWER and created.enabled
    # Too short a password, an unknown role: INVALID_ARGUMENT.
    assert code_of(lambda: auth.CreateUser(gpb.CreateUserRequest(username="x", role=gpb.ROLE_VIEWER, password="short"),
                                           metadata=bearer(admin.access_token), timeout=TIMEOUT)) \
        == grpc.StatusCode.INVALID_ARGUMENT
    viewer = login(auth, gpb, "viewer1", "viewer password 1")
    assert code_of(lambda: auth.ListUsers(gpb.ListUsersRequest(), metadata=bearer(viewer.access_token), timeout=TIMEOUT)) \
        == grpc.StatusCode.PERMISSION_DENIED
    users = auth.ListUsers(gpb.ListUsersRequest(), metadata=bearer(admin.access_token), timeout=TIMEOUT)
    assert {u.username for u in users.users} >= {ADMIN, "viewer1"}
    promoted = auth.UpdateUser(gpb.UpdateUserRequest(user="viewer1", role=gpb.ROLE_OPERATOR),
                               metadata=bearer(admin.access_token), timeout=TIMEOUT)
    assert promoted.role == gpb.ROLE_OPERATOR
    # A role change ends the user's sessions: the next token carries the new role.
    assert code_of(lambda: refresh(auth, gpb, viewer.refresh_token)) == grpc.StatusCode.UNAUTHENTICATED
    disabled = auth.DisableUser(gpb.DisableUserRequest(user="viewer1"), metadata=bearer(admin.access_token), timeout=TIMEOUT)
    assert not disabled.enabled
    assert code_of(lambda: login(auth, gpb, "viewer1", "viewer password 1")) == grpc.StatusCode.UNAUTHENTICATED
    activity = auth.ListActivity(gpb.ListActivityRequest(user="viewer1"), metadata=bearer(admin.access_token), timeout=TIMEOUT)
    kinds = [a.kind for a in activity.activities]
    assert kinds[:4] == ["login_failed", "user_disabled", "role_changed", "login"], kinds
    assert kinds[-1] == "user_created"
    assert all(a.peer == "127.0.0.1" for a in activity.activities)
    assert activity.activities[-1].actor_id == admin.user.id
    assert any(a.user_agent == "pytest-gateway" for a in activity.activities)
    assert all("viewer password" not in a.detail_json for a in activity.activities)


# -- abuse resistance ------------------------------------------------------------------------


def timed_failure(auth, gpb, username, password) -> float:
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        login(auth, gpb, username, password)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == "invalid username or password"
    return time.monotonic() - start


def test_unknown_user_and_wrong_password_answer_alike(auth, gpb):
    # Alternating, three of each (each user stays under the lock threshold).
    unknown, wrong = [], []
    for attempt in range(3):
        unknown.append(timed_failure(auth, gpb, f"nobody{attempt}", f"wrong password {attempt}"))
        wrong.append(timed_failure(auth, gpb, ADMIN, f"wrong password {attempt}"))
    # Both cost one Argon2id verification (tens of ms); neither answers much faster.
    assert statistics.median(unknown) > 0.5 * statistics.median(wrong), (unknown, wrong)
    assert statistics.median(wrong) > 0.5 * statistics.median(unknown), (unknown, wrong)
    login(auth, gpb)  # clears the admin's count


def test_failed_logins_lock_the_username(auth, gpb):
    for attempt in range(LOCK_AFTER):
        assert code_of(lambda: login(auth, gpb, "locked-out", f"wrong password {attempt}")) \
            == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as caught:
        login(auth, gpb, "locked-out", "anything at all")
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Another username from the same peer is not locked.
    assert login(auth, gpb).user.username == ADMIN
    admin = login(auth, gpb)
    activity = auth.ListActivity(gpb.ListActivityRequest(), metadata=bearer(admin.access_token), timeout=TIMEOUT)
    locked = [a for a in activity.activities if a.kind == "login_locked"]
    assert locked and locked[0].username == "locked-out"


# -- stbctl ----------------------------------------------------------------------------------


def test_stbctl_login_keeps_a_private_session_and_refreshes_it(gateway_server, tmp_path, auth, gpb):
    binary = os.environ.get("STB_STBCTL_BIN")
    if not binary:
        pytest.skip("STB_STBCTL_BIN is not set")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "STB_GATEWAY_ADDR": gateway_server.addr}
    env.pop("STB_TOKEN", None)

    def stbctl(*args, stdin=None):
        return subprocess.run([binary, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60)

    assert stbctl("whoami").returncode == 1
    logged = stbctl("login", "--username", ADMIN, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    assert logged.returncode == 0, logged.stderr
    cache = tmp_path / "stbctl" / "token.json"
    assert cache.stat().st_mode & 0o777 == 0o600
    assert ADMIN_PASSWORD not in cache.read_text()
    whoami = stbctl("whoami")
    assert whoami.returncode == 0 and ADMIN in whoami.stdout, whoami.stderr
    created = stbctl("users", "create", "cli-user", "--role", "engineer", "--password-stdin", stdin="cli user password\n")
    assert created.returncode == 0, created.stderr
    listed = stbctl("users", "list")
    assert "cli-user" in listed.stdout and "engineer" in listed.stdout
    # An access token about to expire is refreshed before the call, and the file rewritten.
    import json
    session = json.loads(cache.read_text())
    session["access_expires_at_ms"] = 0
    cache.write_text(json.dumps(session))
    assert stbctl("whoami").returncode == 0
    renewed = json.loads(cache.read_text())
    assert renewed["refresh_token"] != session["refresh_token"] and renewed["access_expires_at_ms"] > 0
    assert cache.stat().st_mode & 0o777 == 0o600
    # The user changes their own password: this session goes on, the old password stops working.
    changed = stbctl("passwd", "--password-stdin", stdin=f"{ADMIN_PASSWORD}\n{ADMIN_PASSWORD} 2\n")
    assert changed.returncode == 0, changed.stderr
    assert stbctl("whoami").returncode == 0
    assert code_of(lambda: login(auth, gpb)) == grpc.StatusCode.UNAUTHENTICATED
    changed_back = stbctl("passwd", "--password-stdin", stdin=f"{ADMIN_PASSWORD} 2\n{ADMIN_PASSWORD}\n")
    assert changed_back.returncode == 0, changed_back.stderr
    renewed = json.loads(cache.read_text())
    logout = stbctl("logout")
    assert logout.returncode == 0 and not cache.exists()
    assert code_of(lambda: refresh(auth, gpb, renewed["refresh_token"])) == grpc.StatusCode.UNAUTHENTICATED
