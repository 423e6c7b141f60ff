"""projectd load-tested alone: the catalog, rules and gateway it calls are stubd mocks.

The stub file (services/stubs/demo-projectd/stubs.json) gives the mocks a small catalog
(GetConfig, and a Watch that stays open and quiet), a quiet rules Watch, and the gateway's
GetKeys and ServiceLogin: projectd fetches its verification key and signs its service
account in at the gateway mock, with a key and tokens made for this run. The scenario
(services/stubs/demo-projectd/scenario.json), run by stubd through `stbctl scenario run`,
puts a rules Evaluate stub with a set delay, creates four projects, drives SetOptions (each
call evaluates the changed selection at the rules mock) with thresholds, then slows the
rules mock and lets it reset a share of its streams (RST_STREAM) and drives the same load
again, so the second report shows projectd's errors and latency.

Run in full by scripts/demo-load; in a short form by test_load_demo.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc

import auth_tokens

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "services" / "stubs" / "demo-projectd"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Daemon:
    """One service process, ready once it prints `NAME listening on HOST:PORT`."""

    def __init__(self, name: str, binary: str, env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        environment = os.environ.copy()
        environment.update(env)
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([binary], stdout=subprocess.PIPE, stderr=self._log, env=environment,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        ready = f"{name} listening on ".encode()
        output = b""
        deadline = time.monotonic() + 60
        os.set_blocking(self.proc.stdout.fileno(), False)
        while b"\n" not in output.partition(ready)[2]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start:\n{self.log_tail()}")
            try:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
            except BlockingIOError:
                chunk = b""
            if chunk:
                output += chunk
            else:
                time.sleep(0.02)
        self.addr = output.partition(ready)[2].split(b"\n", 1)[0].decode().strip()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        os.set_blocking(self.proc.stdout.fileno(), True)
        try:
            while os.read(self.proc.stdout.fileno(), 65536):
                pass
        except OSError:
            pass

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_serving(addr: str, timeout: float = 60) -> None:
    """Polls grpc.health.v1 until SERVING (projectd serves once it has the catalog)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(addr) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        while True:
            try:
                if check(b"", timeout=20) == b"\x08\x01":
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{addr} not SERVING within {timeout}s")
            time.sleep(0.2)


def render(path: Path, values: dict) -> str:
    """The template at `path` with each `${NAME}` replaced (a name it lacks is an error)."""
    return re.sub(r"\$\{([A-Z_]+)\}", lambda match: str(values[match.group(1)]), path.read_text())


def set_options_requests(run: str) -> list[dict]:
    """Round-robin requests: each project's bitrate alternates, so every call changes a
    draft and is evaluated at the rules mock."""
    return [{"projectKey": f"{run}-{index}", "changes": [{"key": "max_video_bitrate_kbps", "valueJson": str(value)}]}
            for value in (12000, 16000) for index in range(4)]


def run_demo(*, stubd: str, projectd: str, stbctl: str, project_db: str, stubs_db: str, workdir: Path,
             rate: int = 20, duration: str = "20s", evaluate_ms: int = 5, fault_evaluate_ms: int = 100,
             fault_probability: float = 0.2, thresholds: tuple[str, ...] = ("p99<250ms", "errors<0.1%")) -> dict:
    """Starts stubd (with the mocks) and projectd, runs the scenario and returns its result
    (`stbctl scenario run --json`), with `exit` the exit status of stbctl."""
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("CATALOG_PORT", "RULES_PORT", "GATEWAY_PORT")}
    lifetime = 4 * 3600
    service_token = auth_tokens.mint("service", "project", lifetime=lifetime)
    key = auth_tokens.KEY.jwk
    stub_file = workdir / "stubs.json"
    stub_file.write_text(render(DEMO / "stubs.json", {
        **ports, "KEY_X": key["x"], "KEY_ID": key["kid"], "SERVICE_TOKEN": service_token,
        "SERVICE_TOKEN_EXPIRES_MS": (int(time.time()) + lifetime) * 1000,
    }))
    daemons: list[Daemon] = []
    try:
        stubs = Daemon("stubd", stubd, {
            "STUBS_HOST": HOST, "STUBS_PORT": str(free_port()), "STUBS_DATABASE_URL": stubs_db,
            "STUBS_MIGRATIONS_DIR": str(REPO / "services" / "stubs" / "migrations"), "STUBS_FILE": str(stub_file),
            # stubd's own admin API verifies tokens with the run's key from a file.
            "STB_AUTH_KEYS_FILE": auth_tokens.JWKS_PATH,
        }, workdir / "stubd.log")
        daemons.append(stubs)
        project = Daemon("projectd", projectd, {
            "PROJECT_HOST": HOST, "PROJECT_PORT": str(free_port()), "PROJECT_DATABASE_URL": project_db,
            "PROJECT_MIGRATIONS_DIR": str(REPO / "services" / "project" / "migrations"),
            "PROJECT_CATALOG_ADDR": f"{HOST}:{ports['CATALOG_PORT']}", "PROJECT_RULES_ADDR": f"{HOST}:{ports['RULES_PORT']}",
            # Keys and the service account's token come from the gateway mock.
            "STB_GATEWAY_ADDR": f"{HOST}:{ports['GATEWAY_PORT']}", "STB_AUTH_KEYS_FILE": "",
            "PROJECT_SERVICE_TOKEN": "", "PROJECT_SERVICE_SECRET": "demo-secret",
        }, workdir / "projectd.log")
        daemons.append(project)
        wait_serving(project.addr)
        run = f"load-{uuid.uuid4().hex[:8]}"
        scenario = workdir / "scenario.json"
        scenario.write_text(render(DEMO / "scenario.json", {
            "PROJECT_ADDR": project.addr, "TOKEN": auth_tokens.mint("engineer", "load-demo"), "RUN": run,
            "RATE": rate, "DURATION": duration, "EVALUATE_MS": evaluate_ms, "FAULT_EVALUATE_MS": fault_evaluate_ms,
            "FAULT_PROBABILITY": fault_probability, "THRESHOLDS": json.dumps(list(thresholds)),
            "SET_OPTIONS_REQUESTS": json.dumps(set_options_requests(run)),
        }))
        env = os.environ.copy()
        env["STB_TOKEN"] = auth_tokens.mint("admin", "load-demo")
        done = subprocess.run([stbctl, "scenario", "run", str(scenario), "--json", "--stubs-addr", stubs.addr],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=3600)
        if not done.stdout.strip().startswith("{"):
            raise RuntimeError(f"stbctl scenario run failed ({done.returncode}): {done.stdout}{done.stderr}\n"
                               f"{stubs.log_tail()}\n{project.log_tail()}")
        result = json.loads(done.stdout)
        result["exit"] = done.returncode
        (workdir / "result.json").write_text(json.dumps(result, indent=2))
        return result
    finally:
        for daemon in reversed(daemons):
            daemon.stop()


def loads(result: dict) -> list[dict]:
    """The scenario's LOAD steps' reports, in order."""
    return [step["detail"] for step in result["steps"] if step["type"] == "LOAD"]


def summary(result: dict) -> str:
    lines = [f"{result['scenario']}: {result['status']} in {result['durationMs']} ms"]
    for name, report in zip(("baseline", "rules mock slowed and resetting streams"), loads(result)):
        total = report["total"]
        intended, actual = total["latencyFromIntendedMs"], total["latencyFromActualMs"]
        lines.append(f"{name}: {report['method']} at {report['steps'][0]['targetRate']:.0f}/s, "
                     f"sent {total['sent']}, errors {total['errors']}, statuses {json.dumps(total['statuses'])}")
        lines.append(f"  latency from intended send (ms): p50 {intended['p50']:.1f}  p90 {intended['p90']:.1f}  "
                     f"p99 {intended['p99']:.1f}  max {intended['max']:.1f}")
        lines.append(f"  latency from actual send (ms):   p50 {actual['p50']:.1f}  p99 {actual['p99']:.1f}")
        for sample, count in sorted(total.get("errorSamples", {}).items()):
            lines.append(f"  error: {sample} ×{count}")
        for verdict in report.get("thresholds", []):
            lines.append(f"  threshold {verdict['threshold']}: {verdict['measured']} "
                         f"{'pass' if verdict['passed'] else 'FAIL'}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    build = REPO / ".build" / os.environ.get("DEMO_BUILD", "debug")
    parser.add_argument("--stubd", default=os.environ.get("STB_STUBD_BIN", str(build / "stubd")))
    parser.add_argument("--projectd", default=os.environ.get("STB_PROJECTD_BIN", str(build / "projectd")))
    parser.add_argument("--stbctl", default=os.environ.get("STB_STBCTL_BIN", str(build / "stbctl")))
    parser.add_argument("--project-db", default=os.environ.get("PROJECT_DATABASE_URL"))
    parser.add_argument("--stubs-db", default=os.environ.get("STUBS_DATABASE_URL"))
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--evaluate-ms", type=int, default=5)
    parser.add_argument("--fault-evaluate-ms", type=int, default=100)
    parser.add_argument("--fault-probability", type=float, default=0.2)
    parser.add_argument("--threshold", action="append", help="default: p99<250ms and errors<0.1%%")
    parser.add_argument("--workdir", type=Path, default=None, help="logs, rendered files and result.json")
    args = parser.parse_args()
    if not args.project_db or not args.stubs_db:
        parser.error("set PROJECT_DATABASE_URL and STUBS_DATABASE_URL (eval \"$(scripts/db env)\")")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stb-demo-load-"))
    result = run_demo(
        stubd=args.stubd, projectd=args.projectd, stbctl=args.stbctl, project_db=args.project_db, stubs_db=args.stubs_db,
        workdir=workdir, rate=args.rate, duration=args.duration, evaluate_ms=args.evaluate_ms,
        fault_evaluate_ms=args.fault_evaluate_ms, fault_probability=args.fault_probability,
        thresholds=tuple(args.threshold or ("p99<250ms", "errors<0.1%")))
    print(summary(result))
    print(f"(the whole result, logs and rendered files: {workdir})")
    baseline, faulted = (all(v["passed"] for v in report.get("thresholds", [])) for report in loads(result))
    # The demonstration holds when the baseline passes its thresholds and the faulted run does not.
    return 0 if baseline and not faulted else 1


if __name__ == "__main__":
    sys.exit(main())
