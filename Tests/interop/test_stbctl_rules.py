"""End-to-end tests of stbctl's rules commands (`rules …`, `evaluate`, `fire`, `events`)
against a real rulesd reading a real catalogd.

Fixtures (conftest.py): `catalog_server`, `rules_server` (a rulesd per module on a fresh
rules database, reading this module's catalogd) and `stbctl_bin`. The demo seed is
imported into a catalog database of this module's own (test_catalog_grpcio expects to
import it into an empty catalog itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

import auth_tokens

from conftest import REPO, own_catalog_database

pytestmark = pytest.mark.skipif(
    not (os.environ.get("STB_CATALOGD_BIN") and os.environ.get("STB_RULESD_BIN")),
    reason="STB_CATALOGD_BIN and STB_RULESD_BIN must be set: these tests need catalogd and rulesd",
)

ACTOR = "stbctl-rules-test"
# stbctl presents this token (STB_TOKEN); the audit trail names its user.
TOKEN = auth_tokens.mint("admin", ACTOR)
CALL_TIMEOUT = 30
DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"
DEMO_RULE_KEYS = sorted(rule["key"] for rule in json.loads(DEMO_SEED.read_text())["rules"])
HDMI_2_1 = json.dumps({"hdmi_version": "2.1", "hdcp_version": "2.2"})
HDMI_2_0 = json.dumps({"hdmi_version": "2.0", "hdcp_version": "2.2"})


@pytest.fixture(scope="module")
def catalog_database():
    with own_catalog_database("stbctl_rules") as url:
        yield url


def run(bin_path, catalog_addr: str, rules_addr: str, *args: str, stdin: str | None = None):
    env = {k: v for k, v in os.environ.items() if k not in ("STB_CATALOG_ADDR", "STB_RULES_ADDR")}
    env["STB_TOKEN"] = TOKEN
    return subprocess.run(
        [str(bin_path), *args, "--addr", catalog_addr, "--rules-addr", rules_addr],
        input=stdin, capture_output=True, text=True, timeout=CALL_TIMEOUT, env=env,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (
        f"stbctl exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def cli(stbctl_bin, catalog_server, rules_server):
    """`cli(*args)` runs stbctl against this module's catalogd and rulesd."""
    return lambda *args, stdin=None: run(stbctl_bin, catalog_server.addr, rules_server.addr, *args, stdin=stdin)


@pytest.fixture(scope="module")
def seeded(cli):
    """The demo seed in the catalog, once rulesd has caught up with it."""
    out = ok(cli("seed", "import", str(DEMO_SEED)))
    revision = int(out.strip().splitlines()[-1].rsplit(" ", 1)[1])
    deadline = time.monotonic() + 30
    while True:
        check = json.loads(ok(cli("rules", "check", "--json")))
        if check["catalog_revision"] >= revision:
            return cli
        assert time.monotonic() < deadline, f"rulesd is at catalog revision {check['catalog_revision']}, not {revision}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def with_rules(seeded):
    ok(seeded("rules", "import", str(DEMO_SEED)))
    return seeded


def selection(tmp_path, document: dict) -> str:
    path = tmp_path / "selection.json"
    path.write_text(json.dumps(document))
    return str(path)


# -- rules import --------------------------------------------------------------------------


def test_rules_import_dry_run_apply_then_no_changes(seeded):
    dry = ok(seeded("rules", "import", str(DEMO_SEED), "--dry-run")).splitlines()
    assert dry[0] == f"created {len(DEMO_RULE_KEYS)}, updated 0, deleted 0, unchanged 0", dry
    assert sorted(line[2:] for line in dry if line.startswith("+ ")) == DEMO_RULE_KEYS
    assert dry[-1] == "dry run: nothing written"

    applied = ok(seeded("rules", "import", str(DEMO_SEED))).splitlines()
    assert applied[0] == dry[0]
    assert applied[-1].startswith("applied at revision "), applied

    again = ok(seeded("rules", "import", str(DEMO_SEED))).splitlines()
    assert again == [f"created 0, updated 0, deleted 0, unchanged {len(DEMO_RULE_KEYS)}", "no changes"]


def test_rules_import_json_and_stdin(with_rules):
    reply = json.loads(ok(with_rules("rules", "import", "-", "--json", stdin=DEMO_SEED.read_text())))
    assert reply["applied"] is False
    assert reply["created"] == [] and reply["unchanged"] == len(DEMO_RULE_KEYS)


def test_rules_import_missing_file(with_rules, tmp_path):
    result = with_rules("rules", "import", str(tmp_path / "nope.json"))
    assert result.returncode == 1
    assert result.stderr.startswith("stbctl: no such file"), result.stderr


# -- list, get, delete ---------------------------------------------------------------------


def test_rules_list_get(with_rules):
    table = ok(with_rules("rules", "list", "--subject", "static_ip")).splitlines()
    assert table[0].split()[:4] == ["RULE", "SUBJECT", "TYPE", "SEVERITY"]
    assert sorted(line.split()[0] for line in table[1:]) == ["dhcp-timeout-forbids-static", "static-ip-needs-addressing"]

    listed = json.loads(ok(with_rules("rules", "list", "--json")))
    assert sorted(rule["key"] for rule in listed) == DEMO_RULE_KEYS

    shown = ok(with_rules("rules", "get", "video-bitrate-bound"))
    assert "subject: max_video_bitrate_kbps" in shown.splitlines()
    assert "type: validation" in shown.splitlines()
    rule = json.loads(ok(with_rules("rules", "get", "video-bitrate-bound", "--json")))
    assert rule["payload"] == {"logic": {"<=": [1000, {"var": "max_video_bitrate_kbps"}, 50000]}}


def test_rules_get_missing_is_not_found(with_rules):
    result = with_rules("rules", "get", "no-such-rule")
    assert result.returncode == 1
    assert result.stderr.startswith("stbctl: NOT_FOUND"), result.stderr


# -- rules check ---------------------------------------------------------------------------


def test_rules_check_summary_and_strict(with_rules):
    result = with_rules("rules", "check")
    out = ok(result)
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("no findings") or " findings: " in summary or summary.startswith("1 finding:"), out
    check = json.loads(ok(with_rules("rules", "check", "--json")))
    assert check["unknown_references"] == [] and check["cycles"] == [], check
    findings = sum(len(check[k]) for k in ("cycles", "dead_options", "unknown_references", "contradictions"))
    strict = with_rules("rules", "check", "--strict")
    assert strict.returncode == (3 if findings else 0), strict.stdout + strict.stderr


# -- evaluate ------------------------------------------------------------------------------


def test_evaluate_invalid_exits_1(with_rules, tmp_path):
    path = selection(tmp_path, {"include": ["parental_pin_required"],
                                "values": {"max_video_bitrate_kbps": 60000, "parental_pin_required": True}})
    result = with_rules("evaluate", path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("invalid: "), lines
    assert any(line.startswith("error video-bitrate-bound: The maximum video bitrate") for line in lines), lines
    assert "  max_video_bitrate_kbps [=60000]" in lines, lines
    assert result.stderr == ""


def test_evaluate_valid_exits_0(with_rules, tmp_path):
    path = selection(tmp_path, {"include": ["parental_pin_required", "hdr_format"],
                                "exclude": ["playready_enabled"],
                                "values": {"max_video_bitrate_kbps": 25000, "parental_pin_required": True}})
    out = ok(with_rules("evaluate", path))
    assert out.splitlines()[0].startswith("valid"), out
    reply = json.loads(ok(with_rules("evaluate", path, "--json")))
    assert reply["valid"] is True


def test_evaluate_requires_shows_missing_option_and_closure(with_rules, tmp_path):
    path = selection(tmp_path, {"include": ["dolby_atmos", "parental_pin_required", "hdr_format"],
                                "exclude": ["playready_enabled", "audio_passthrough"],
                                "values": {"parental_pin_required": True}})
    result = with_rules("evaluate", path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("error atmos-needs-passthrough: ") for line in lines), lines
    assert "  audio_passthrough [=n]" in lines, lines


def test_evaluate_malformed_selection_is_a_usage_error(with_rules, tmp_path):
    path = selection(tmp_path, {"include": "hdr_enabled"})
    result = with_rules("evaluate", path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "include" in result.stderr


# -- state machines ------------------------------------------------------------------------


def test_fire_prints_next_state(seeded):
    assert ok(seeded("fire", "video", "idle", "ENABLE_4K", "--context", HDMI_2_1)).strip() == "4k_enabled"


def test_fire_refused_prints_reason(seeded):
    result = seeded("fire", "video", "idle", "ENABLE_4K", "--context", HDMI_2_0)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("stbctl: FAILED_PRECONDITION"), result.stderr
    assert "2.0" in result.stderr
    assert result.stdout == ""


def test_fire_context_must_be_an_object(seeded):
    result = seeded("fire", "video", "idle", "ENABLE_4K", "--context", "[1]")
    assert result.returncode == 2
    assert "--context" in result.stderr


def test_events_lists_available_events(seeded):
    lines = ok(seeded("events", "video", "idle", "--context", HDMI_2_1)).splitlines()
    assert lines[0].split() == ["EVENT", "TO"]
    assert ["ENABLE_4K", "4k_enabled"] in [line.split() for line in lines[1:]]


# -- addresses -----------------------------------------------------------------------------


def test_unreachable_rules_service(stbctl_bin, catalog_server):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(stbctl_bin, catalog_server.addr, f"127.0.0.1:{port}", "rules", "check")
    assert result.returncode == 1
    assert result.stderr.startswith(f"stbctl: cannot reach the rules service at 127.0.0.1:{port}"), result.stderr


def test_rules_addr_from_environment(stbctl_bin, rules_server, with_rules):
    env = dict(os.environ)
    env["STB_TOKEN"] = TOKEN
    env["STB_RULES_ADDR"] = rules_server.addr
    result = subprocess.run([str(stbctl_bin), "rules", "get", "video-bitrate-bound"],
                            capture_output=True, text=True, timeout=CALL_TIMEOUT, env=env)
    assert "key: video-bitrate-bound" in ok(result).splitlines()


def test_bad_rules_addr_is_a_usage_error(stbctl_bin):
    result = subprocess.run([str(stbctl_bin), "rules", "check", "--rules-addr", "nonsense"],
                            capture_output=True, text=True, timeout=CALL_TIMEOUT)
    assert result.returncode == 2
    assert "rules service address 'nonsense'" in result.stderr
