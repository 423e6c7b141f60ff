"""A service whose log reader has gone (a supervisor that closed its end of the pipe, say)
keeps serving: its log writes fail, they do not end the process (SIGPIPE is ignored)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import grpc

import auth_tokens
from conftest import CATALOG_MIGRATIONS, CATALOG_READY_PREFIX, HOST, REPO, _catalogd_binary, _free_port, health_status

TIMEOUT = 30


def _ready_port(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    deadline = time.monotonic() + timeout
    output = b""
    while b"\n" not in output.partition(CATALOG_READY_PREFIX)[2]:
        assert proc.poll() is None, f"catalogd exited with {proc.returncode} before it was ready: {output[-2000:]!r}"
        assert time.monotonic() < deadline, f"catalogd not ready within {timeout}s: {output[-2000:]!r}"
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        output += chunk
    line = output.partition(CATALOG_READY_PREFIX)[2].split(b"\n", 1)[0].decode().strip()
    return int(line.rsplit(":", 1)[1])


def test_a_service_whose_log_reader_has_gone_keeps_serving_and_stops_cleanly(catalog_database):
    env = os.environ.copy()
    env.update({
        "STB_AUTH_KEYS_FILE": auth_tokens.JWKS_PATH,
        "CATALOG_HOST": HOST,
        "CATALOG_PORT": str(_free_port()),
        "CATALOG_DATABASE_URL": catalog_database,
        "CATALOG_MIGRATIONS_DIR": str(CATALOG_MIGRATIONS),
        # Every closed connection is logged at debug level: each call below writes a log line.
        "LOG_LEVEL": "debug",
    })
    # Logs and the ready line share one pipe; once the service is ready its reader goes.
    proc = subprocess.Popen([str(_catalogd_binary())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
    try:
        port = _ready_port(proc)
        proc.stdout.close()
        for _ in range(5):
            with grpc.insecure_channel(f"{HOST}:{port}") as channel:
                assert health_status(channel, timeout=TIMEOUT) == 1
            # The connection's close is logged into the closed pipe.
            time.sleep(0.2)
            assert proc.poll() is None, f"catalogd ended with {proc.returncode} after writing to a closed pipe"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=TIMEOUT)
        assert code == 0, f"catalogd exited with {code} after SIGTERM (-{int(signal.SIGPIPE)} is SIGPIPE)"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
