"""Shared fixtures for the interop and hardening tests of stb-echo-server.

The server binary comes from $STB_ECHO_SERVER_BIN, else
`.build-interop/debug/stb-echo-server` (build it with
`swift build --scratch-path .build-interop --product stb-echo-server`).
Every server listens on 127.0.0.1 with a port it picks itself; its stderr log is kept
in a temporary file and quoted when an assertion about the process fails.

Servers run with glibc's free-memory perturbation (MALLOC_PERTURB_, tcache off), so a
use-after-free in the server crashes it every time rather than once in a while; set
STB_TEST_PLAIN_MALLOC=1 to run them with the default allocator instead. At teardown each
server must still be running (it must never crash); it is then killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

import auth_tokens

REPO = Path(__file__).resolve().parents[2]
PROTOS = REPO / "Protos"
DEFAULT_BINARY = REPO / ".build-interop" / "debug" / "stb-echo-server"
READY_PREFIX = b"stb-echo-server listening on "
HOST = "127.0.0.1"

# Channel options for the well-behaved control client: no proxies, and a subchannel pool
# of its own so every channel really opens a new connection.
CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.use_local_subchannel_pool", 1),
]


def server_binary() -> Path:
    configured = os.environ.get("STB_ECHO_SERVER_BIN")
    path = Path(configured) if configured else DEFAULT_BINARY
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"stb-echo-server binary not found at {path}. Build it with "
            "`swift build --scratch-path .build-interop --product stb-echo-server` "
            "or point STB_ECHO_SERVER_BIN at it.",
            pytrace=False,
        )
    return path


class EchoServer:
    """One stb-echo-server process."""

    def __init__(self, binary: Path, log_path: Path, env: dict[str, str] | None = None):
        self.binary = binary
        self.log_path = log_path
        self.env_overrides = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        # Set by a test that stops the server on purpose (graceful shutdown).
        self.expect_exit = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> "EchoServer":
        env = os.environ.copy()
        # Make use-after-free deterministic: glibc fills freed blocks with 0xA5 (no tcache,
        # which would skip the fill), so a dangling reference crashes at once instead of
        # now and then. Set STB_TEST_PLAIN_MALLOC=1 to run with the default allocator.
        if env.get("STB_TEST_PLAIN_MALLOC") != "1":
            env.setdefault("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")
            env.setdefault("MALLOC_PERTURB_", "165")
        env.update({"STB_ECHO_HOST": HOST, "STB_ECHO_PORT": "0"})
        env.update(self.env_overrides)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(self.binary)], stdout=subprocess.PIPE, stderr=self._log, env=env,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        deadline = time.monotonic() + timeout
        output = b""
        while b"\n" not in output.partition(READY_PREFIX)[2]:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"stb-echo-server exited with {self.proc.returncode} before it was ready\n"
                    f"stdout: {output!r}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"stb-echo-server not ready within {timeout}s\n{self.log_tail()}")
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if not chunk:
                time.sleep(0.01)
                continue
            output += chunk
        line = output.partition(READY_PREFIX)[2].split(b"\n", 1)[0].decode()
        self.port = int(line.rsplit(":", 1)[1])
        # Keep draining stdout so the server can never block on a full pipe.
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        return self

    def _drain_stdout(self):
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, True)
        try:
            while os.read(fd, 65536):
                pass
        except OSError:
            pass

    def kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None and "Program crashed" in self.log_path.read_text(errors="replace"):
            # Swift's backtracer is still writing; killing the server now would orphan it.
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._log.close()

    # -- observation -----------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self, context: str = ""):
        if not self.alive():
            raise AssertionError(
                f"stb-echo-server is not running{' ' + context if context else ''}: "
                f"exit status {self.proc.returncode}\n{self.log_tail()}")

    def rss_kib(self) -> int:
        """Resident set size (VmRSS) in KiB."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("VmRSS missing from /proc status")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        log = text.splitlines()
        crash = next((i for i, line in enumerate(log) if "Program crashed" in line), None)
        if crash is not None:
            # Swift's backtracer: the crash line and the crashed thread's frames matter most.
            crashed = next((i for i, line in enumerate(log) if "crashed:" in line and i > crash), crash)
            return "--- server crash ---\n" + "\n".join(log[crash:crash + 2] + log[crashed:crashed + 12])
        return "--- server log (tail) ---\n" + "\n".join(log[-lines:])

    def channel(self, options=()) -> grpc.Channel:
        return grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS + list(options))


class RssSampler:
    """Samples a server's RSS in the background; `peak_kib` is the largest value seen."""

    def __init__(self, server: EchoServer, interval: float = 0.05):
        self.server = server
        self.interval = interval
        self.baseline_kib = server.rss_kib()
        self.peak_kib = self.baseline_kib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, self.server.rss_kib())
            except (OSError, AssertionError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)
        try:
            self.peak_kib = max(self.peak_kib, self.server.rss_kib())
        except (OSError, AssertionError):
            pass

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.baseline_kib) / 1024


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    """Python messages and stubs generated from Protos/ now: stb.testing.v1.Echo as
    `pb2`/`grpc`, stb.catalog.v1.Catalog as `catalog_pb2`/`catalog_grpc`,
    stb.rules.v1.Rules as `rules_pb2`/`rules_grpc`, stb.project.v1.Projects as
    `project_pb2`/`project_grpc`, and stb.common.v1 as `common_pb2`."""
    out = tmp_path_factory.mktemp("stubs")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}",
         f"--grpc_python_out={out}", "stb/testing/v1/echo.proto",
         "stb/catalog/v1/catalog.proto", "stb/common/v1/common.proto", "stb/rules/v1/rules.proto",
         "stb/project/v1/project.proto"],
        check=True, timeout=60,
    )
    sys.path.insert(0, str(out))
    try:
        pb2 = importlib.import_module("stb.testing.v1.echo_pb2")
        pb2_grpc = importlib.import_module("stb.testing.v1.echo_pb2_grpc")
        common_pb2 = importlib.import_module("stb.common.v1.common_pb2")
        catalog_pb2 = importlib.import_module("stb.catalog.v1.catalog_pb2")
        catalog_grpc = importlib.import_module("stb.catalog.v1.catalog_pb2_grpc")
        rules_pb2 = importlib.import_module("stb.rules.v1.rules_pb2")
        rules_grpc = importlib.import_module("stb.rules.v1.rules_pb2_grpc")
        project_pb2 = importlib.import_module("stb.project.v1.project_pb2")
        project_grpc = importlib.import_module("stb.project.v1.project_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return SimpleNamespace(pb2=pb2, grpc=pb2_grpc, common_pb2=common_pb2,
                           catalog_pb2=catalog_pb2, catalog_grpc=catalog_grpc,
                           rules_pb2=rules_pb2, rules_grpc=rules_grpc,
                           project_pb2=project_pb2, project_grpc=project_grpc)


def _stop(server: EchoServer):
    try:
        if not server.expect_exit:
            server.assert_alive("at teardown (it must never crash)")
    finally:
        server.kill()


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory):
    """One server with default settings per test module."""
    server = EchoServer(server_binary(), tmp_path_factory.mktemp("server") / "server.log").start()
    yield server
    _stop(server)


@pytest.fixture
def start_server(tmp_path, request):
    """Factory for servers with a special environment; stopped at the end of the test.

    Teardown asserts each server is still running, except in tests marked xfail: those
    document a known crash and assert survival themselves."""
    servers: list[EchoServer] = []
    crash_expected = request.node.get_closest_marker("xfail") is not None

    def start(**env: str) -> EchoServer:
        log = tmp_path / f"server-{len(servers)}.log"
        server = EchoServer(server_binary(), log, {k: str(v) for k, v in env.items()})
        servers.append(server)
        return server.start()

    yield start
    errors = []
    for server in servers:
        server.expect_exit = server.expect_exit or crash_expected
        try:
            _stop(server)
        except AssertionError as error:
            errors.append(str(error))
    if errors:
        raise AssertionError("\n".join(errors))


@pytest.fixture(scope="session")
def rss_sampler():
    """`with rss_sampler(server) as rss:` samples the server's RSS; see RssSampler."""
    return RssSampler


@pytest.fixture(scope="session")
def control_call(stubs):
    """Asserts a well-behaved grpcio client on a new connection gets a correct unary reply."""

    def check(server: EchoServer, timeout: float = 20.0):
        server.assert_alive("after the attack")
        started = time.monotonic()
        with server.channel() as channel:
            stub = stubs.grpc.EchoStub(channel)
            try:
                reply = stub.Get(stubs.pb2.EchoRequest(text="control", payload=b"\x00\x01"), timeout=timeout)
            except grpc.RpcError as error:
                raise AssertionError(
                    f"control call failed: {error.code()} {error.details()}\n{server.log_tail()}") from None
        elapsed = time.monotonic() - started
        assert reply.text == "control" and reply.payload == b"\x00\x01"
        assert elapsed < timeout
        server.assert_alive("after the control call")
        return elapsed

    return check



# -- catalogd ------------------------------------------------------------------------------
#
# The catalog fixtures need $STB_CATALOGD_BIN (and the local cluster of scripts/db:
# `eval "$(scripts/db env)"` sets STB_PG_ADMIN_URL and STB_TEST_DATABASE_URL); without the
# binary they skip. One fresh database serves the whole session, so test modules share
# it: tests use unique keys or tolerate data that is already there.

CATALOG_READY_PREFIX = b"catalogd listening on "
CATALOG_MIGRATIONS = REPO / "services" / "catalog" / "migrations"


def _catalogd_binary() -> Path:
    configured = os.environ.get("STB_CATALOGD_BIN")
    if not configured:
        pytest.skip("STB_CATALOGD_BIN is not set: these tests need a catalogd binary")
    path = Path(configured).resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"catalogd binary not found at {path} ($STB_CATALOGD_BIN); build it with "
                    "`swift build --product catalogd`", pytrace=False)
    return path


def _database_url(base: str, user: str, database: str) -> str:
    """`base` (a libpq URI) with another user and database, password dropped."""
    from urllib.parse import parse_qsl, urlencode, urlsplit

    parts = urlsplit(base)
    netloc = parts.netloc.rpartition("@")[2]
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("user", "password", "dbname")]
    if netloc:
        netloc = f"{user}@{netloc}"
    else:
        query.append(("user", user))
    # Built by hand: urlunsplit would drop the "//" of an empty authority (a socket URI).
    query_text = urlencode(query, safe="/")
    return f"{parts.scheme}://{netloc}/{database}" + (f"?{query_text}" if query_text else "")


def _admin_psql(admin_url: str, sql: str):
    result = subprocess.run(
        ["psql", admin_url, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-c", sql],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        raise AssertionError(f"psql failed ({result.returncode}) for {sql!r}:\n{result.stderr}")


@pytest.fixture(scope="session")
def catalog_database():
    """A fresh database `catalog_it_<pid>` owned by role catalog; dropped at the end.
    Yields its URL (user catalog). A test module that needs a catalog of its own (one it
    imports the demo seed into, say) overrides this fixture with `own_catalog_database`."""
    _catalogd_binary()
    with fresh_database(f"catalog_it_{os.getpid()}", "catalog") as url:
        yield url


@contextlib.contextmanager
def own_catalog_database(suffix: str):
    """A fresh catalog database `catalog_it_<pid>_<suffix>` for one test module."""
    _catalogd_binary()
    with fresh_database(f"catalog_it_{os.getpid()}_{suffix}", "catalog") as url:
        yield url


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class CatalogServer:
    """One catalogd process (or another service that announces itself the same way:
    `NAME listening on HOST:PORT` on stdout)."""

    name = "catalogd"
    ready_prefix = CATALOG_READY_PREFIX

    def __init__(self, binary: Path, log_path: Path, env: dict[str, str]):
        self.binary = binary
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self, timeout: float = 60.0) -> "CatalogServer":
        env = os.environ.copy()
        # Tokens are verified with the session's test key; the service calls its peers
        # with a service account token (RULES_SERVICE_TOKEN, …).
        env["STB_AUTH_KEYS_FILE"] = auth_tokens.JWKS_PATH
        account = self.name.removesuffix("d")
        env[f"{account.upper()}_SERVICE_TOKEN"] = auth_tokens.mint("service", account)
        env.update(self.env)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(self.binary)], stdout=subprocess.PIPE, stderr=self._log, env=env,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO,
        )
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        deadline = time.monotonic() + timeout
        output = b""
        while b"\n" not in output.partition(self.ready_prefix)[2]:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready\n"
                    f"stdout: {output!r}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"{self.name} not ready within {timeout}s\n{self.log_tail()}")
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if not chunk:
                time.sleep(0.01)
                continue
            output += chunk
        line = output.partition(self.ready_prefix)[2].split(b"\n", 1)[0].decode().strip()
        self.port = int(line.rsplit(":", 1)[1])
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        return self

    def _drain_stdout(self):
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, True)
        try:
            while os.read(fd, 65536):
                pass
        except OSError:
            pass

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def channel(self, options=(), token: str | None = None) -> grpc.Channel:
        """A grpcio channel whose calls carry `token` (an admin's by default)."""
        return auth_tokens.authenticated(self.raw_channel(options), token)

    def raw_channel(self, options=()) -> grpc.Channel:
        """A grpcio channel without a token."""
        return grpc.insecure_channel(self.addr, options=CHANNEL_OPTIONS + list(options))

    def log_tail(self, lines: int = 40) -> str:
        try:
            log = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return f"--- {self.name} log (tail) ---\n" + "\n".join(log[-lines:])

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM; returns the exit status (kills it and fails when it does not end)."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"{self.name} did not exit within {timeout}s of SIGTERM\n{self.log_tail()}")
        self._log.close()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if not self._log.closed:
            self._log.close()


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    """Environment every service fixture of a test module adds last (catalog_server,
    rules_server, project_server): none by default, so tokens are verified with the
    session's JWKS file. A module that runs the services behind a real gatewayd overrides
    it (STB_GATEWAY_ADDR, the service accounts' secrets; see test_stbctl_project.py)."""
    return {}


@pytest.fixture(scope="module")
def catalog_server(catalog_database, service_env, tmp_path_factory):
    """A catalogd on the session's database, per test module. `.addr` is "host:port",
    `.channel()` a grpcio channel to it. At teardown it must still be running, and must
    exit with status 0 within 10 s of SIGTERM (graceful shutdown)."""
    binary = _catalogd_binary()
    server = CatalogServer(binary, tmp_path_factory.mktemp("catalogd") / "catalogd.log", {
        "CATALOG_HOST": HOST,
        "CATALOG_PORT": str(_free_port()),
        "CATALOG_DATABASE_URL": catalog_database,
        "CATALOG_MIGRATIONS_DIR": str(CATALOG_MIGRATIONS),
        **service_env,
    }).start()
    yield server
    if not server.alive():
        code = server.proc.returncode
        server.kill()
        raise AssertionError(f"catalogd died during the tests (status {code})\n{server.log_tail()}")
    code = server.terminate(timeout=10)
    assert code == 0, f"catalogd exited with {code} after SIGTERM\n{server.log_tail()}"


# -- rulesd --------------------------------------------------------------------------------
#
# The rules fixtures need $STB_RULESD_BIN (and $STB_CATALOGD_BIN: rulesd reads the catalog);
# without it they skip. Each test module gets a fresh rules database and a rulesd that
# reads that module's catalog_server.

RULES_READY_PREFIX = b"rulesd listening on "
RULES_MIGRATIONS = REPO / "services" / "rules" / "migrations"

# grpc.health.v1.Health/Check, by hand: the request for service "" is empty; the reply's
# field 1 (varint) is the status.
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_SERVING, HEALTH_NOT_SERVING = 1, 2


def _rulesd_binary() -> Path:
    configured = os.environ.get("STB_RULESD_BIN")
    if not configured:
        pytest.skip("STB_RULESD_BIN is not set: these tests need a rulesd binary")
    path = Path(configured).resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"rulesd binary not found at {path} ($STB_RULESD_BIN); build it with "
                    "`swift build --product rulesd`", pytrace=False)
    return path


def _admin_urls() -> tuple[str, str]:
    admin = os.environ.get("STB_PG_ADMIN_URL")
    test_url = os.environ.get("STB_TEST_DATABASE_URL")
    if not admin or not test_url:
        pytest.fail('STB_PG_ADMIN_URL / STB_TEST_DATABASE_URL are not set: run '
                    '`eval "$(scripts/db env)"` first', pytrace=False)
    return admin, test_url


@contextlib.contextmanager
def fresh_database(name: str, owner: str):
    """Creates database `name` owned by role `owner` (dropping any leftover first), yields
    its URL (user `owner`), and drops it afterwards."""
    admin, test_url = _admin_urls()
    _admin_psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_psql(admin, f'CREATE DATABASE "{name}" OWNER {owner}')
    try:
        yield _database_url(test_url, owner, name)
    finally:
        _admin_psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def health_status(channel: grpc.Channel, service: str = "", timeout: float = 20.0) -> int:
    """The grpc.health.v1 status of `service` (1 SERVING, 2 NOT_SERVING, 0 UNKNOWN)."""
    encoded = service.encode()
    request = (b"\x0a" + bytes([len(encoded)]) + encoded) if encoded else b""
    check = channel.unary_unary(HEALTH_CHECK, request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
    reply = check(request, timeout=timeout)
    return reply[1] if len(reply) >= 2 and reply[0] == 0x08 else 0


class RulesServer(CatalogServer):
    """One rulesd process."""

    name = "rulesd"
    ready_prefix = RULES_READY_PREFIX

    def wait_serving(self, timeout: float = 30.0) -> "RulesServer":
        """Polls grpc health until SERVING (rulesd and projectd are NOT_SERVING until they
        have a copy of the catalog)."""
        deadline = time.monotonic() + timeout
        last = None
        with self.channel() as channel:
            while True:
                if not self.alive():
                    raise AssertionError(f"{self.name} exited with {self.proc.returncode} while waiting for "
                                         f"SERVING\n{self.log_tail()}")
                try:
                    last = health_status(channel)
                    if last == HEALTH_SERVING:
                        return self
                except grpc.RpcError as error:
                    last = f"{error.code()}: {error.details()}"
                if time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError(f"{self.name} not SERVING within {timeout}s (last: {last})\n"
                                         f"{self.log_tail()}")
                time.sleep(0.1)


@pytest.fixture(scope="module")
def rules_database():
    """A fresh database `rules_it_<pid>` owned by role rules, per test module (so every
    module's rulesd starts empty); dropped at the end. Yields its URL (user rules)."""
    _rulesd_binary()
    with fresh_database(f"rules_it_{os.getpid()}", "rules") as url:
        yield url


@pytest.fixture(scope="module")
def rules_server(rules_database, catalog_server, service_env, tmp_path_factory):
    """A rulesd on `rules_database` that reads the module's `catalog_server`, ready
    (health SERVING). `.addr`, `.channel()` as for catalog_server. At teardown it must
    still be running, and must exit with status 0 within 10 s of SIGTERM; a test that
    stops it itself sets `.expect_exit`."""
    binary = _rulesd_binary()
    server = RulesServer(binary, tmp_path_factory.mktemp("rulesd") / "rulesd.log", {
        "RULES_HOST": HOST,
        "RULES_PORT": str(_free_port()),
        "RULES_DATABASE_URL": rules_database,
        "RULES_MIGRATIONS_DIR": str(RULES_MIGRATIONS),
        "RULES_CATALOG_ADDR": catalog_server.addr,
        **service_env,
    }).start()
    server.expect_exit = False
    server.wait_serving()
    yield server
    if server.expect_exit:
        server.kill()
        return
    if not server.alive():
        code = server.proc.returncode
        server.kill()
        raise AssertionError(f"rulesd died during the tests (status {code})\n{server.log_tail()}")
    code = server.terminate(timeout=10)
    assert code == 0, f"rulesd exited with {code} after SIGTERM\n{server.log_tail()}"


@pytest.fixture(scope="session")
def stbctl_bin() -> Path:
    """The stbctl binary, from $STB_STBCTL_BIN."""
    configured = os.environ.get("STB_STBCTL_BIN")
    if not configured:
        pytest.skip("STB_STBCTL_BIN is not set: these tests need an stbctl binary")
    path = Path(configured).resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"stbctl binary not found at {path} ($STB_STBCTL_BIN)", pytrace=False)
    return path


# -- projectd ------------------------------------------------------------------------------
#
# The project fixtures need $STB_PROJECTD_BIN (with catalogd and rulesd: projectd follows
# the catalog and has the rules service check every selection); without it they skip.
# Each test module gets a fresh project database and a projectd that reads that module's
# catalog_server and rules_server.

PROJECT_READY_PREFIX = b"projectd listening on "
PROJECT_MIGRATIONS = REPO / "services" / "project" / "migrations"


def _projectd_binary() -> Path:
    configured = os.environ.get("STB_PROJECTD_BIN")
    if not configured:
        pytest.skip("STB_PROJECTD_BIN is not set: these tests need a projectd binary")
    path = Path(configured).resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"projectd binary not found at {path} ($STB_PROJECTD_BIN); build it with "
                    "`swift build --product projectd`", pytrace=False)
    return path


class ProjectServer(RulesServer):
    """One projectd process."""

    name = "projectd"
    ready_prefix = PROJECT_READY_PREFIX


@pytest.fixture(scope="module")
def project_database():
    """A fresh database `project_it_<pid>` owned by role project, per test module;
    dropped at the end. Yields its URL (user project)."""
    _projectd_binary()
    with fresh_database(f"project_it_{os.getpid()}", "project") as url:
        yield url


@pytest.fixture(scope="module")
def project_server(project_database, catalog_server, rules_server, service_env, tmp_path_factory):
    """A projectd on `project_database` that follows the module's `catalog_server` and asks
    its `rules_server`, ready (health SERVING). `.addr`, `.channel()` as for
    catalog_server. At teardown it must still be running, and must exit with status 0
    within 10 s of SIGTERM."""
    binary = _projectd_binary()
    server = ProjectServer(binary, tmp_path_factory.mktemp("projectd") / "projectd.log", {
        "PROJECT_HOST": HOST,
        "PROJECT_PORT": str(_free_port()),
        "PROJECT_DATABASE_URL": project_database,
        "PROJECT_MIGRATIONS_DIR": str(PROJECT_MIGRATIONS),
        "PROJECT_CATALOG_ADDR": catalog_server.addr,
        "PROJECT_RULES_ADDR": rules_server.addr,
        **service_env,
    }).start()
    server.expect_exit = False
    server.wait_serving()
    yield server
    if server.expect_exit:
        server.kill()
        return
    if not server.alive():
        code = server.proc.returncode
        server.kill()
        raise AssertionError(f"projectd died during the tests (status {code})\n{server.log_tail()}")
    code = server.terminate(timeout=10)
    assert code == 0, f"projectd exited with {code} after SIGTERM\n{server.log_tail()}"
