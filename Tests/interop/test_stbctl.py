"""End-to-end tests of the `stbctl` command-line client against a real catalogd.

Fixtures (from conftest.py):
  catalog_server  a running catalogd; `.addr` is its "host:port"
  stbctl_bin      the stbctl binary ($STB_STBCTL_BIN)

Every test imports its own small seed document whose module and option keys carry a
random suffix, so the tests neither depend on one another nor on what else the catalog
holds, whether the server is shared by the module or started per test.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

import auth_tokens

pytestmark = pytest.mark.skipif(
    not os.environ.get("STB_CATALOGD_BIN"),
    reason="STB_CATALOGD_BIN is not set: these tests need a catalogd binary",
)

ACTOR = "stbctl-test"
# stbctl presents this token (STB_TOKEN); the audit trail names its user.
TOKEN = auth_tokens.mint("admin", ACTOR)
CALL_TIMEOUT = 30  # seconds for one stbctl run
WATCH_TIMEOUT = 20  # seconds to wait for an event on a watch


# -- helpers -------------------------------------------------------------------------


def stbctl(bin_path, addr: str, *args: str, actor: str = ACTOR, stdin: str | None = None):
    """Runs stbctl against `addr` as `actor` (an admin's token naming them, STB_TOKEN);
    returns the CompletedProcess (text, never raises on status)."""
    env = {k: v for k, v in os.environ.items() if k != "STB_CATALOG_ADDR"}
    env["STB_TOKEN"] = TOKEN if actor == ACTOR else auth_tokens.mint("admin", actor)
    return subprocess.run(
        [str(bin_path), *args, "--addr", addr],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        env=env,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    """The stdout of a run that must have succeeded."""
    assert result.returncode == 0, (
        f"stbctl exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def assert_no_crash(result: subprocess.CompletedProcess) -> None:
    """No Swift runtime crash report or stack trace on either stream."""
    for text in (result.stdout, result.stderr):
        for marker in ("Fatal error", "Stack dump", "Current stack trace", "Illegal instruction"):
            assert marker not in text, f"stbctl crashed:\n{text}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed_document(uid: str) -> dict:
    """The brief's example seed, with keys made unique to this test."""
    return {
        "modules": [
            {
                "key": f"cli{uid}",
                "name": "Video",
                "description": "stbctl end-to-end test module",
                "active": True,
                "initial_state": "idle",
                "meta": {},
                "states": [{"name": "idle"}, {"name": "4k_enabled"}],
                "transitions": [
                    {
                        "from": "idle",
                        "event": "ENABLE_4K",
                        "to": "4k_enabled",
                        "condition": {"==": [{"var": "hdmi_version"}, "2.1"]},
                    }
                ],
                "groups": [
                    {
                        "key": "output",
                        "name": "Output",
                        "position": 1,
                        "options": [
                            {
                                "key": f"hdr_{uid}",
                                "name": "HDR",
                                "type": "boolean",
                                "default": True,
                                "editable": True,
                                "included_by_default": True,
                                "meta": {},
                            },
                            {
                                "key": f"resolution_{uid}",
                                "name": "Resolution",
                                "type": "enum",
                                "default": "1080p",
                                "meta": {"values": ["720p", "1080p", "2160p"]},
                            },
                            {
                                "key": f"volume_max_{uid}",
                                "name": "Max volume",
                                "type": "integer",
                                "default": 80,
                                "meta": {"min": 0, "max": 100},
                            },
                        ],
                    }
                ],
            }
        ]
    }


@pytest.fixture
def cli(catalog_server, stbctl_bin, tmp_path):
    """stbctl bound to the test server, with this test's keys and seed file."""
    uid = uuid.uuid4().hex[:8]
    seed_path = tmp_path / f"seed-{uid}.json"
    seed_path.write_text(json.dumps(seed_document(uid), indent=2))
    module = f"cli{uid}"
    return SimpleNamespace(
        run=lambda *args, **kwargs: stbctl(stbctl_bin, catalog_server.addr, *args, **kwargs),
        bin=stbctl_bin,
        addr=catalog_server.addr,
        seed=seed_path,
        module=module,
        hdr=f"hdr_{uid}",
        resolution=f"resolution_{uid}",
        volume=f"volume_max_{uid}",
        created=[
            f"+ module {module}",
            f"+ group {module}/output",
            f"+ option hdr_{uid}",
            f"+ option resolution_{uid}",
            f"+ option volume_max_{uid}",
            f"+ state {module}/idle",
            f"+ state {module}/4k_enabled",
            f"+ transition {module}/idle/ENABLE_4K",
        ],
    )


@pytest.fixture
def seeded(cli):
    """`cli` with its seed imported."""
    out = ok(cli.run("seed", "import", str(cli.seed)))
    assert re.search(r"^applied at revision \d+$", out, re.M), out
    return cli


def config_json(cli) -> dict:
    return json.loads(ok(cli.run("config", "--json")))


def find_module(config: dict, key: str) -> dict | None:
    return next((m for m in config["modules"] if m["key"] == key), None)


class LineReader:
    """Reads a subprocess's stdout lines on a thread, so waits can time out."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, predicate, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no matching line within {timeout}s; saw: {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"the watch ended before a matching line; saw: {self.seen}")
            self.seen.append(line)
            if predicate(line):
                return line


def start_watch(cli, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "STB_CATALOG_ADDR"}
    env["STB_TOKEN"] = TOKEN
    return subprocess.Popen(
        [str(cli.bin), "watch", *args, "--addr", cli.addr],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def stop_watch(proc: subprocess.Popen) -> tuple[int, str]:
    """Ctrl-C: the watch must end by itself, cleanly. Returns (exit code, stderr)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("stbctl watch did not end within 10 s of SIGINT")
    return code, proc.stderr.read()


# -- seed import -----------------------------------------------------------------------


def test_seed_import_dry_run_then_apply_then_no_changes(cli):
    # Dry run: the plan is printed, nothing is written.
    dry = cli.run("seed", "import", str(cli.seed), "--dry-run")
    out = ok(dry).splitlines()
    assert out[0].startswith(f"created {len(cli.created)}, updated 0, deleted 0, unchanged "), out
    assert sorted(line for line in out if line[:2] in ("+ ", "~ ", "- ")) == sorted(cli.created)
    assert out[-1] == "dry run: nothing written"
    assert find_module(config_json(cli), cli.module) is None, "a dry run wrote the module"

    # For real.
    out = ok(cli.run("seed", "import", str(cli.seed))).splitlines()
    assert out[0].startswith(f"created {len(cli.created)}, updated 0, deleted 0"), out
    assert sorted(line for line in out if line[:2] in ("+ ", "~ ", "- ")) == sorted(cli.created)
    assert re.fullmatch(r"applied at revision \d+", out[-1]), out
    assert find_module(config_json(cli), cli.module) is not None

    # Again: idempotent.
    out = ok(cli.run("seed", "import", str(cli.seed))).splitlines()
    assert re.fullmatch(r"created 0, updated 0, deleted 0, unchanged \d+", out[0]), out
    assert not [line for line in out if line[:2] in ("+ ", "~ ", "- ")], out
    assert out[-1] == "no changes"


def test_seed_import_json_reply(cli):
    reply = json.loads(ok(cli.run("seed", "import", str(cli.seed), "--dry-run", "--json")))
    assert reply["applied"] is False
    assert reply["dry_run"] is True
    created = {f"{item['entity']} {item['key']}" for item in reply["plan"]["created"]}
    assert created == {line[2:] for line in cli.created}


def test_seed_import_from_stdin(cli):
    out = ok(cli.run("seed", "import", "-", "--dry-run", stdin=cli.seed.read_text()))
    assert out.splitlines()[-1] == "dry run: nothing written"


def test_seed_import_missing_file(cli, tmp_path):
    result = cli.run("seed", "import", str(tmp_path / "absent.json"))
    assert result.returncode == 1
    assert "no such file" in result.stderr
    assert_no_crash(result)


# -- config ------------------------------------------------------------------------------


def test_config_tree_shows_the_options(seeded):
    cli = seeded
    lines = ok(cli.run("config", "--module", cli.module)).splitlines()
    assert re.fullmatch(r"catalog revision \d+", lines[0]), lines
    assert f"{cli.module}  Video (active, initial state idle)" in lines
    assert "  output  Output" in lines

    patterns = {
        cli.hdr: rf"    {cli.hdr} +boolean +default true",
        cli.resolution: rf"    {cli.resolution} +enum +default 1080p +\[720p, 1080p, 2160p\]",
        cli.volume: rf"    {cli.volume} +integer +default 80 +0\.\.100",
    }
    option_lines = []
    for pattern in patterns.values():
        matches = [line for line in lines if re.fullmatch(pattern, line)]
        assert len(matches) == 1, f"no line matching {pattern!r} in:\n" + "\n".join(lines)
        option_lines += matches
    # Columns line up: the types start in one column, and so do the defaults.
    columns = [re.fullmatch(r"    \S+ +(\S+) +(default .*)", line) for line in option_lines]
    assert len({match.start(1) for match in columns}) == 1, option_lines
    assert len({match.start(2) for match in columns}) == 1, option_lines

    states = next(line for line in lines if line.startswith("  states: "))
    assert sorted(states[len("  states: "):].split(", ")) == ["4k_enabled", "idle"]
    assert any(line.startswith("  transitions: idle --ENABLE_4K--> 4k_enabled") for line in lines), lines


def test_config_json_has_the_tree(seeded):
    cli = seeded
    text = ok(cli.run("config", "--json", "--module", cli.module))
    config = json.loads(text)
    assert isinstance(config["revision"], int) and config["revision"] > 0
    assert isinstance(config["cursor"], str)
    # Sorted keys: the top-level members appear in order.
    assert text.index('"cursor"') < text.index('"modules"') < text.index('"revision"')

    module = find_module(config, cli.module)
    assert module is not None and module["active"] is True and module["initial_state"] == "idle"
    (group,) = module["groups"]
    assert group["key"] == "output" and group["position"] == 1
    options = {option["key"]: option for option in group["options"]}
    assert set(options) == {cli.hdr, cli.resolution, cli.volume}
    assert options[cli.hdr]["type"] == "boolean"
    assert options[cli.hdr]["default_value"] == "true"
    assert options[cli.resolution]["meta"]["values"] == ["720p", "1080p", "2160p"]
    assert options[cli.volume]["meta"] == {"min": 0, "max": 100}
    assert sorted(state["name"] for state in module["states"]) == ["4k_enabled", "idle"]
    (transition,) = module["transitions"]
    assert (transition["from_state"], transition["event"], transition["to_state"]) == ("idle", "ENABLE_4K", "4k_enabled")
    assert transition["condition"] == {"==": [{"var": "hdmi_version"}, "2.1"]}


# -- get, list, update, delete ------------------------------------------------------------


def test_get_option(seeded):
    cli = seeded
    out = ok(cli.run("get", "option", cli.hdr)).splitlines()
    for line in (f"key: {cli.hdr}", f"module_key: {cli.module}", "group_key: output", "name: HDR",
                 "type: boolean", "default_value: true", "editable: true", "included_by_default: true"):
        assert line in out, out

    option = json.loads(ok(cli.run("get", "option", cli.hdr, "--json")))
    assert option["key"] == cli.hdr and option["id"] > 0
    # A numeric REF is an id.
    assert f"key: {cli.hdr}" in ok(cli.run("get", "option", str(option["id"]))).splitlines()


def test_get_other_kinds(seeded):
    cli = seeded
    assert f"key: {cli.module}" in ok(cli.run("get", "module", cli.module)).splitlines()
    assert "key: output" in ok(cli.run("get", "group", f"{cli.module}/output")).splitlines()
    assert "name: idle" in ok(cli.run("get", "state", f"{cli.module}/idle")).splitlines()
    transition = ok(cli.run("get", "transition", f"{cli.module}/idle/ENABLE_4K")).splitlines()
    assert "to_state: 4k_enabled" in transition
    assert 'condition: {"==":[{"var":"hdmi_version"},"2.1"]}' in transition


def test_list_options_of_a_group(seeded):
    cli = seeded
    lines = ok(cli.run("list", "options", "--group", f"{cli.module}/output")).splitlines()
    assert lines[0].split() == ["OPTION", "TYPE", "DEFAULT", "GROUP", "ID", "NAME"]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted([cli.hdr, cli.resolution, cli.volume])
    listed = json.loads(ok(cli.run("list", "options", "--module", cli.module, "--json")))
    assert sorted(option["key"] for option in listed) == sorted([cli.hdr, cli.resolution, cli.volume])


def test_update_option_default_then_get(seeded):
    cli = seeded
    updated = ok(cli.run("update", "option", cli.hdr, "--default", "false")).splitlines()
    assert "default_value: false" in updated
    got = ok(cli.run("get", "option", cli.hdr)).splitlines()
    assert "default_value: false" in got
    # Only the given field changed.
    assert "name: HDR" in got and "type: boolean" in got


def test_delete_option(seeded):
    cli = seeded
    assert ok(cli.run("delete", "option", cli.volume)).strip() == f"deleted option {cli.volume}"
    result = cli.run("get", "option", cli.volume)
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr


# -- errors --------------------------------------------------------------------------------


def test_unknown_option_is_not_found(cli):
    result = cli.run("get", "option", "nope")
    assert result.returncode == 1, result
    assert result.stderr.startswith("stbctl: NOT_FOUND"), result.stderr
    assert result.stdout == ""
    assert_no_crash(result)


def test_usage_errors_exit_2(cli):
    for args in (("get", "option", "a/b"), ("get", "gizmo", "x"), ("update", "option", "hdr"),
                 ("create", "option", "x", "--group", "nogroup", "--name", "X", "--type", "boolean"),
                 ("update", "option", "hdr", "--meta", "not json")):
        result = cli.run(*args)
        assert result.returncode == 2, (args, result)
        assert_no_crash(result)


def test_unreachable_catalog(stbctl_bin):
    addr = f"127.0.0.1:{free_port()}"
    result = stbctl(stbctl_bin, addr, "get", "option", "hdr")
    assert result.returncode == 1
    assert f"cannot reach the catalog at {addr}" in result.stderr
    assert_no_crash(result)


# -- watch ---------------------------------------------------------------------------------


def test_watch_json_shows_an_update_made_meanwhile(seeded):
    cli = seeded
    cursor = config_json(cli)["cursor"]
    proc = start_watch(cli, "--json", "--after", cursor)
    try:
        reader = LineReader(proc)
        ok(cli.run("update", "option", cli.hdr, "--default", "false", actor="alice"))

        def is_update(line: str) -> bool:
            event = json.loads(line)
            return event["entity"] == "option" and event["key"] == cli.hdr and event["action"] == "updated"

        event = json.loads(reader.wait_for(is_update, WATCH_TIMEOUT))
        assert event["actor"] == "alice"
        assert event["revision"] > 0 and event["cursor"]
        assert event["state"]["default_value"] == "false"
    finally:
        code, stderr = stop_watch(proc)
    assert code == 0, f"Ctrl-C should end watch with 0, got {code}: {stderr}"
    assert "Fatal error" not in stderr


def test_watch_text_line(seeded):
    cli = seeded
    cursor = config_json(cli)["cursor"]
    proc = start_watch(cli, "--after", cursor)
    try:
        reader = LineReader(proc)
        ok(cli.run("update", "option", cli.resolution, "--default", "720p", actor="bob"))
        line = reader.wait_for(lambda text: f" option {cli.resolution} " in text, WATCH_TIMEOUT)
        assert re.fullmatch(rf"\S+  updated option {cli.resolution}  by bob  rev \d+", line), line
    finally:
        code, _ = stop_watch(proc)
    assert code == 0
