#!/usr/bin/env python3
"""Helpers for scripts/bench-rpc (standard library, plus protobuf/grpc_tools for `body`).

    rpc_bench.py body OUT                  write a length-prefixed gRPC EchoRequest{text:"hello"}
    rpc_bench.py check-grpc NGHTTP_OUT     exit 1 unless an `nghttp -v` transcript shows a 200
                                           response echoing "hello" with `grpc-status: 0` in the trailers
    rpc_bench.py h2load H2LOAD_OUT LOG     print key=value results of one h2load run, with
                                           p50/p90/p99 from its --log-file (exit 1 if it failed)
    rpc_bench.py summary RESULTS           print the summary table from the collected key=value lines
"""

from __future__ import annotations

import importlib
import math
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "Protos"


def cmd_body(out: str) -> int:
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory(prefix="stb-bench-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"-I{well_known}",
             f"--python_out={tmp}", "stb/testing/v1/echo.proto"],
            check=True,
        )
        sys.path.insert(0, tmp)
        pb2 = importlib.import_module("stb.testing.v1.echo_pb2")
        message = pb2.EchoRequest(text="hello").SerializeToString()
    # gRPC message prefix: compressed flag (0) and big-endian length.
    Path(out).write_bytes(struct.pack(">BI", 0, len(message)) + message)
    return 0


def cmd_check_grpc(path: str) -> int:
    text = Path(path).read_bytes().decode("latin-1")
    lines = text.splitlines()
    problems = []
    status = [l for l in lines if re.search(r"recv \(stream_id=\d+\) :status: ", l)]
    if not status or not status[0].rstrip().endswith(":status: 200"):
        problems.append(f"HTTP status is not 200: {status[:1]}")
    data_at = [i for i, l in enumerate(lines) if "recv DATA frame" in l]
    if not data_at:
        problems.append("no DATA frame received")
    if "hello" not in text:
        problems.append('the response does not echo "hello"')
    trailers = [l for l in lines[(data_at[-1] if data_at else 0):] if re.search(r"recv \(stream_id=\d+\) grpc-", l)]
    codes = [l.split("grpc-status:")[1].strip() for l in trailers if "grpc-status:" in l]
    if codes != ["0"]:
        every = [l.strip() for l in lines if "grpc-status" in l or "grpc-message" in l]
        problems.append(f"trailers do not carry grpc-status: 0 (saw {every or 'no grpc-status at all'})")
    if problems:
        for p in problems:
            print(f"check-grpc: {p}", file=sys.stderr)
        return 1
    print("grpc_status=0")
    return 0


def percentile(sorted_values: list[int], p: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def cmd_h2load(out_path: str, log_path: str) -> int:
    out = Path(out_path).read_text(errors="replace")
    results: dict[str, str] = {}
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    if m:
        results["req_per_s"] = f"{float(m.group(3)):.0f}"
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    if m:
        total, _, done, ok, failed, errored, timeout = map(int, m.groups())
        results.update(requests=str(total), succeeded=str(ok), failed=str(failed), errored=str(errored), timeout=str(timeout))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        results["non2xx"] = str(sum(map(int, m.groups()[1:])))

    durations: list[int] = []
    bad_rows = 0
    try:
        with open(log_path) as log:
            for row in log:
                cols = row.split("\t")
                if len(cols) < 3:
                    continue
                if cols[1] != "200":
                    bad_rows += 1
                    continue
                durations.append(int(cols[2]))
    except FileNotFoundError:
        pass
    durations.sort()
    results["logged"] = str(len(durations))
    results["logged_failed"] = str(bad_rows)
    for p in (50, 90, 99):
        results[f"p{p}_us"] = f"{percentile(durations, p):.0f}" if durations else "nan"
    if durations:
        results["mean_us"] = f"{sum(durations) / len(durations):.0f}"
        results["max_us"] = str(durations[-1])
    print(" ".join(f"{k}={v}" for k, v in results.items()))

    problems = []
    if "req_per_s" not in results or "succeeded" not in results:
        problems.append("could not read h2load's result lines")
    else:
        if int(results["succeeded"]) == 0:
            problems.append("no request succeeded")
        if int(results.get("failed", 0)) or int(results.get("errored", 0)) or int(results.get("timeout", 0)):
            problems.append(f"failed={results['failed']} errored={results['errored']} timeout={results['timeout']}")
        if int(results.get("non2xx", 0)):
            problems.append(f"{results['non2xx']} non-2xx responses")
    if not durations:
        problems.append("the --log-file has no successful rows")
    for p in problems:
        print(f"h2load: {p}", file=sys.stderr)
    return 1 if problems else 0


def read_results(path: str) -> dict[str, str]:
    results: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        for token in line.split():
            if "=" in token:
                key, value = token.split("=", 1)
                results[key] = value
    return results


def num(results: dict[str, str], key: str) -> float | None:
    try:
        value = float(results[key])
    except (KeyError, ValueError):
        return None
    return None if math.isnan(value) else value


def cmd_summary(path: str) -> int:
    r = read_results(path)

    def fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
        if value is None:
            return "n/a"
        return f"{value:,.{digits}f}{unit}"

    def ms(key: str) -> str:
        value = num(r, key)
        return "n/a" if value is None else f"{value / 1000:.3f} ms"

    def mib(key: str) -> str:
        value = num(r, key)
        return "n/a" if value is None else f"{value / 1024:.1f} MiB"

    rows = []
    for server, label in (("ours", "stb-echo-server (1 worker)"), ("grpcio", "python grpcio")):
        for load, name in (("c16m32", "unary 16x32"), ("c1m1", "unary 1x1")):
            prefix = f"{server}_{load}_"
            rows.append((label, name, fmt(num(r, prefix + "req_per_s"), " req/s"),
                         ms(prefix + "p50_us"), ms(prefix + "p99_us")))
    lines = []
    widths = [28, 12, 16, 11, 11]
    header = ("server", "load", "throughput", "p50", "p99")
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    lines.append("")
    for server, label in (("ours", "stb-echo-server"), ("grpcio", "python grpcio")):
        lines.append(
            f"{label:<16} stream: {fmt(num(r, server + '_stream_msgs_per_s'), ' msgs/s')}"
            f" ({fmt(num(r, server + '_stream_messages'))} msgs, {r.get(server + '_stream_streams', '?')} streams)"
            f"   our-client unary {r.get(server + '_client_concurrency', '?')}-way: {fmt(num(r, server + '_client_calls_per_s'), ' calls/s')}"
            f" p50 {fmt(num(r, server + '_client_p50_us'), ' us', 0)} p99 {fmt(num(r, server + '_client_p99_us'), ' us', 0)}"
        )
        lines.append(
            f"{'':<16} RSS: start {mib(server + '_rss_start_kb')}, after load {mib(server + '_rss_after_kb')}, peak {mib(server + '_hwm_kb')}"
        )
    for prefix, name in (("idle_", "idle, fresh"), ("idle2_", "idle, 2nd round")):
        if prefix + "connections" not in r:
            continue
        lines.append(
            f"{name + ':':<16} {r.get(prefix + 'connections', 'n/a')} of {r.get(prefix + 'requested', '?')} HTTP/2 connections"
            f" open to stb-echo-server; its RSS {mib(prefix + 'rss_before_kb')} before, {mib(prefix + 'rss_kb')} with them open"
            f" ({fmt(num(r, prefix + 'per_conn_bytes'))} B/conn), {mib(prefix + 'rss_after_kb')} after they closed"
        )
    lines.append("")

    targets = []

    def target(name: str, value: float | None, shown: str, goal: str, ok) -> None:
        verdict = "n/a" if value is None else ("PASS" if ok(value) else "MISS")
        targets.append((verdict, name, shown, goal))

    def ratio(load: str) -> float | None:
        ours, theirs = num(r, f"ours_{load}_req_per_s"), num(r, f"grpcio_{load}_req_per_s")
        return None if ours is None or not theirs else ours / theirs

    for load, name, goal in (("c16m32", "unary 16x32 ours/grpcio", 10), ("c1m1", "unary 1x1 ours/grpcio", 3)):
        value = ratio(load)
        target(name, value, "n/a" if value is None else f"{value:.1f}x", f">= {goal}x", lambda v, g=goal: v >= g)
    value = num(r, "ours_stream_msgs_per_s")
    target("server-streaming msgs/s", value, fmt(value), ">= 500,000", lambda v: v >= 500_000)
    for prefix, label in (("idle_", "fresh server"), ("idle2_", "2nd round")):
        if prefix + "connections" not in r and prefix == "idle2_":
            continue
        value = num(r, prefix + "rss_kb")
        open_ok = r.get(prefix + "connections") is not None and r.get(prefix + "connections") == r.get(prefix + "requested")
        target(f"RSS, {r.get(prefix + 'requested', '?')} idle conns ({label})", value if open_ok else None,
               mib(prefix + "rss_kb") if open_ok else f"{r.get(prefix + 'connections', 'n/a')} open",
               "< 200 MiB", lambda v: v < 200 * 1024)
    lines.append(f"{'target':<40}  {'value':<14}  {'goal':<12}  verdict")
    for verdict, name, shown, goal in targets:
        lines.append(f"{name:<40}  {shown:<14}  {goal:<12}  {verdict}")
    print("\n".join(lines))
    return 0


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = sys.argv[1], sys.argv[2:]
    commands = {"body": (cmd_body, 1), "check-grpc": (cmd_check_grpc, 1), "h2load": (cmd_h2load, 2), "summary": (cmd_summary, 1)}
    if command not in commands or len(args) != commands[command][1]:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[command][0](*args)


if __name__ == "__main__":
    sys.exit(main())
