"""End-to-end tests of `stbctl project …` against real gatewayd, catalogd, rulesd and
projectd, wired as scripts/up wires them.

Every service here verifies tokens with the gateway's keys (STB_GATEWAY_ADDR, no JWKS
file), and rulesd and projectd sign in at the gateway as their service accounts with
secrets (the `service_env` fixture overrides conftest's default). stbctl logs in at the
gateway as real users, each with a session of its own (XDG_CONFIG_HOME), and never sends
STB_TOKEN. The demo catalog and rules are imported by an admin first.

What the tests show: create / list / show (tree with effective values and sources,
validity, hash; --json, whose hash Python's rfc8785 + hashlib recompute); set with JSON
values and bare words; a set the rules refuse (FAILED_PRECONDITION with each violated rule
and the values it saw, nothing written: hash, values and audit rows unchanged); bad input
(INVALID_ARGUMENT naming the field); unset / include / exclude / reset; members (a
non-member sees nothing, a viewer member reads but cannot change, removal hides it
again); the audit log and its verification; and, once the project service has them,
versions, diff, signoffs and change requests (skipped while it answers UNIMPLEMENTED).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import HOST, REPO, CatalogServer, _free_port, fresh_database, own_catalog_database

pytestmark = pytest.mark.skipif(
    not all(os.environ.get(name) for name in (
        "STB_CATALOGD_BIN", "STB_RULESD_BIN", "STB_PROJECTD_BIN", "STB_GATEWAYD_BIN", "STB_STBCTL_BIN")),
    reason="STB_CATALOGD_BIN, STB_RULESD_BIN, STB_PROJECTD_BIN, STB_GATEWAYD_BIN and STB_STBCTL_BIN must be "
           "set: these tests need every service and stbctl",
)

CALL_TIMEOUT = 30
DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"
# Secrets of the service accounts and passwords of the users: made up for this module.
RULES_SECRET = "rules-secret-for-the-project-test"
PROJECT_SECRET = "project-secret-for-the-project-test"
ADMIN, ADMIN_PASSWORD = "root", "admin password for the project test"
USERS = {"alice": "engineer", "bob": "engineer", "vera": "viewer"}


class GatewayServer(CatalogServer):
    name = "gatewayd"
    ready_prefix = b"gatewayd listening on "


@pytest.fixture(scope="module")
def catalog_database():
    with own_catalog_database("stbctl_project") as url:
        yield url


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A gatewayd on a fresh database with the rules and project service accounts and a
    first admin."""
    binary = Path(os.environ["STB_GATEWAYD_BIN"]).resolve()
    with fresh_database(f"gateway_it_{os.getpid()}_project", "gateway") as url:
        env = {
            "GATEWAY_HOST": HOST,
            "GATEWAY_PORT": str(_free_port()),
            "GATEWAY_DATABASE_URL": url,
            "GATEWAY_MIGRATIONS_DIR": str(REPO / "services" / "gateway" / "migrations"),
            "GATEWAY_SERVICE_ACCOUNTS": f"rules:{RULES_SECRET},project:{PROJECT_SECRET}",
            "GATEWAY_KEY_ENCRYPTION_KEY": "11" * 32,
        }
        bootstrap = subprocess.run([str(binary), "bootstrap-admin", ADMIN], input=ADMIN_PASSWORD + "\n",
                                   env={**os.environ, **env}, capture_output=True, text=True, timeout=60, cwd=REPO)
        assert bootstrap.returncode == 0, bootstrap.stderr
        server = GatewayServer(binary, tmp_path_factory.mktemp("gatewayd") / "gatewayd.log", env).start()
        yield server
        alive = server.alive()
        code = server.terminate(timeout=10)
        assert alive, f"gatewayd died during the tests\n{server.log_tail()}"
        assert code == 0, f"gatewayd exited with {code} after SIGTERM\n{server.log_tail()}"


@pytest.fixture(scope="module")
def service_env(gateway) -> dict[str, str]:
    """Keys from the gateway, and service accounts that sign in there (conftest's minted
    service tokens would not verify against the gateway's keys)."""
    return {
        "STB_AUTH_KEYS_FILE": "",
        "STB_GATEWAY_ADDR": gateway.addr,
        "CATALOG_SERVICE_TOKEN": "",
        "RULES_SERVICE_TOKEN": "",
        "RULES_SERVICE_SECRET": RULES_SECRET,
        "PROJECT_SERVICE_TOKEN": "",
        "PROJECT_SERVICE_SECRET": PROJECT_SECRET,
    }


class Cli:
    """stbctl as one user: its own session directory, the module's services."""

    def __init__(self, binary: Path, home: Path, addresses: dict[str, str]):
        self.binary = binary
        self.env = {k: v for k, v in os.environ.items() if k != "STB_TOKEN"}
        self.env.update({"XDG_CONFIG_HOME": str(home), **addresses})
        self.id = ""

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.binary), *args], input=stdin, capture_output=True, text=True,
                              timeout=CALL_TIMEOUT, env=self.env)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, (
            f"stbctl {' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result.stdout

    def fails(self, *args: str) -> str:
        """Runs a call that must be refused; returns its stderr."""
        result = self.run(*args)
        assert result.returncode == 1, (
            f"stbctl {' '.join(args)} exited {result.returncode}, not 1\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        assert result.stderr.startswith("stbctl: "), result.stderr
        return result.stderr

    def show(self, project: str) -> dict:
        return json.loads(self.ok("project", "show", project, "--json"))


@pytest.fixture(scope="module")
def users(stbctl_bin, gateway, catalog_server, rules_server, project_server, tmp_path_factory) -> dict[str, Cli]:
    """stbctl logged in as the admin and as alice, bob (engineers) and vera (a viewer),
    with the demo catalog and rules imported."""
    addresses = {"STB_GATEWAY_ADDR": gateway.addr, "STB_CATALOG_ADDR": catalog_server.addr,
                 "STB_RULES_ADDR": rules_server.addr, "STB_PROJECT_ADDR": project_server.addr}
    clis = {ADMIN: Cli(stbctl_bin, tmp_path_factory.mktemp(ADMIN), addresses)}
    clis[ADMIN].ok("login", "--username", ADMIN, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    for name, role in USERS.items():
        password = f"{name} password for the project test"
        clis[ADMIN].ok("users", "create", name, "--role", role, "--name", name.title(), "--password-stdin",
                       stdin=password + "\n")
        clis[name] = Cli(stbctl_bin, tmp_path_factory.mktemp(name), addresses)
        clis[name].ok("login", "--username", name, "--password-stdin", stdin=password + "\n")
    for line in clis[ADMIN].ok("users", "list").splitlines()[1:]:
        words = line.split()
        if words and words[0] in clis:
            clis[words[0]].id = words[-1]
    assert all(cli.id for cli in clis.values()), "users list did not show every user's id"

    admin = clis[ADMIN]
    admin.ok("seed", "import", str(DEMO_SEED))
    # rulesd follows the catalog asynchronously: retry until its copy names the options.
    deadline = time.monotonic() + 30
    while (result := admin.run("rules", "import", str(DEMO_SEED))).returncode != 0:
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.3)
    return clis


@pytest.fixture(scope="module")
def alice(users) -> Cli:
    return users["alice"]


def new_project(cli: Cli, key: str) -> str:
    """Creates `key` as `cli`, once projectd's catalog copy has the demo options."""
    deadline = time.monotonic() + 30
    while (result := cli.run("project", "create", key, "--name", f"Project {key}")).returncode != 0:
        assert "UNAVAILABLE" in result.stderr and time.monotonic() < deadline, result.stderr
        time.sleep(0.3)
    assert result.stdout.startswith(f"created project {key} (owner); draft hash "), result.stdout
    # The copy may still be the empty catalog of before the import: wait for the options.
    while not any(g["options"] for m in cli.show(key)["modules"] for g in m["groups"]):
        assert time.monotonic() < deadline, "projectd's catalog copy has no options"
        time.sleep(0.3)
    return key


def option(document: dict, key: str) -> dict:
    for module in document["modules"]:
        for group in module["groups"]:
            for entry in group["options"]:
                if entry["key"] == key:
                    return entry
    raise AssertionError(f"no option {key} in the project's tree")


def audit_rows(cli: Cli, project: str) -> list[dict]:
    return json.loads(cli.ok("project", "audit", project, "--json"))


# -- projects and the draft -----------------------------------------------------------------


def test_create_list_show(alice, users):
    new_project(alice, "box-a")
    listing = alice.ok("project", "list")
    header, *rows = listing.splitlines()
    assert header.split()[:2] == ["PROJECT", "ROLE"]
    assert any(row.split()[:2] == ["box-a", "owner"] for row in rows), listing
    assert alice.fails("project", "create", "box-a", "--name", "again").startswith("stbctl: ALREADY_EXISTS")

    text = alice.ok("project", "show", "box-a")
    lines = text.splitlines()
    assert lines[0].startswith("project box-a  Project box-a (role owner)")
    assert lines[1].startswith("draft: valid; hash ") and len(lines[1].split("hash ")[1]) == 64
    # Every option with its effective value and where it comes from.
    resolution = next(line for line in lines if line.strip().startswith("resolution "))
    assert resolution.split() == ["resolution", "enum", '"1080p"', "default"]
    subtitles = next(line for line in lines if line.strip().startswith("subtitles_enabled "))
    assert subtitles.split() == ["subtitles_enabled", "boolean", "n", "default"]

    document = alice.show("box-a")
    assert document["valid"] is True and document["violations"] == []
    assert document["project"]["my_role"] == "owner"
    # The hash is SHA-256 over the RFC 8785 form of the effective configuration.
    rfc8785 = pytest.importorskip("rfc8785")
    assert hashlib.sha256(rfc8785.dumps(document["config"])).hexdigest() == document["hash"]
    assert document["config"]["resolution"] == "1080p" and "subtitles_enabled" not in document["config"]


def test_set_json_values_and_bare_words(alice):
    new_project(alice, "box-set")
    # Neither is included by default; a value alone does not include an option.
    alice.ok("project", "include", "box-set", "max_video_bitrate_kbps", "device_name")
    before = alice.show("box-set")["hash"]
    out = alice.ok("project", "set", "box-set", "max_video_bitrate_kbps=40000", "resolution=720p",
                   'device_name="living-room"', "hdr_enabled=false")
    assert out.startswith("box-set: max_video_bitrate_kbps=40000 resolution=\"720p\"")
    document = alice.show("box-set")
    assert out.rstrip().endswith(document["hash"]) and document["hash"] != before
    assert option(document, "max_video_bitrate_kbps")["value"] == 40000
    assert option(document, "max_video_bitrate_kbps")["value_source"] == "override"
    assert option(document, "resolution")["value"] == "720p"
    assert option(document, "device_name")["value"] == "living-room"
    assert option(document, "hdr_enabled")["value"] is False
    assert document["config"]["max_video_bitrate_kbps"] == 40000

    overrides = alice.ok("project", "show", "box-set", "--overrides").splitlines()
    bitrate = next(line for line in overrides if line.strip().startswith("max_video_bitrate_kbps "))
    assert bitrate.split() == ["max_video_bitrate_kbps", "integer", "40000", "included,", "override", "(default", "25000)"]
    assert not any(line.strip().startswith("ui_language ") for line in overrides)

    # The same batch again changes nothing.
    again = alice.ok("project", "set", "box-set", "max_video_bitrate_kbps=40000")
    assert again.startswith("box-set: nothing changed; draft hash " + document["hash"])


def test_set_refused_by_a_rule_writes_nothing(alice):
    new_project(alice, "box-refused")
    alice.ok("project", "include", "box-refused", "max_video_bitrate_kbps")
    alice.ok("project", "set", "box-refused", "max_video_bitrate_kbps=40000")
    before = alice.show("box-refused")
    rows = audit_rows(alice, "box-refused")

    # Within the option's own range (at most 100000), but video-bitrate-bound allows 50000.
    error = alice.fails("project", "set", "box-refused", "max_video_bitrate_kbps=60000", "ui_language=fr")
    first, *details = error.splitlines()
    assert first.startswith("stbctl: FAILED_PRECONDITION: ") and "video-bitrate-bound" in first, error
    violation = next(line for line in details if line.startswith("  precondition RULE_VIOLATION video-bitrate-bound"))
    assert "max_video_bitrate_kbps=60000" in violation, error
    assert any(line.startswith("  reason RULE_VIOLATION") for line in details), error

    after = alice.show("box-refused")
    assert after["hash"] == before["hash"]
    assert option(after, "max_video_bitrate_kbps")["value"] == 40000
    assert option(after, "ui_language")["value_source"] == "default"
    assert audit_rows(alice, "box-refused") == rows


def test_bad_input_names_the_field(alice):
    new_project(alice, "box-bad")
    error = alice.fails("project", "set", "box-bad", "no_such_option=1")
    assert error.startswith("stbctl: INVALID_ARGUMENT"), error
    assert '  field changes[0].key: unknown option "no_such_option"' in error.splitlines(), error
    error = alice.fails("project", "set", "box-bad", "overscan_percent=50")
    assert "field changes[0].value_json:" in error, error
    error = alice.fails("project", "set", "box-bad", "hw_decoding=false")
    assert "not editable" in error, error
    usage = alice.run("project", "set", "box-bad", "no-equals-sign")
    assert usage.returncode == 2 and "OPTION=VALUE" in usage.stderr, usage.stderr


def test_unset_include_exclude_reset(alice):
    new_project(alice, "box-flags")
    alice.ok("project", "set", "box-flags", "volume_max=90")
    alice.ok("project", "unset", "box-flags", "volume_max")
    entry = option(alice.show("box-flags"), "volume_max")
    assert (entry["value"], entry["value_source"], entry["included"]) == (80, "default", True)

    alice.ok("project", "include", "box-flags", "subtitles_enabled", "night_mode")
    document = alice.show("box-flags")
    assert option(document, "subtitles_enabled")["included"] is True
    assert option(document, "subtitles_enabled")["included_source"] == "override"
    assert document["config"]["night_mode"] is False

    alice.ok("project", "exclude", "box-flags", "hdmi_cec")
    line = next(l for l in alice.ok("project", "show", "box-flags").splitlines() if l.strip().startswith("hdmi_cec "))
    assert line.split() == ["hdmi_cec", "boolean", "n", "excluded"]

    alice.ok("project", "reset", "box-flags", "hdmi_cec", "subtitles_enabled", "night_mode")
    document = alice.show("box-flags")
    for key in ("hdmi_cec", "subtitles_enabled", "night_mode"):
        assert option(document, key)["included_source"] == "default", key
    assert alice.ok("project", "show", "box-flags", "--overrides").rstrip().endswith(
        "no overrides: every option follows the catalog")


# -- members ---------------------------------------------------------------------------------


def test_members_decide_who_sees_and_changes(alice, users):
    bob = users["bob"]
    new_project(alice, "box-team")
    # A non-member cannot tell the project exists.
    assert bob.fails("project", "show", "box-team").startswith("stbctl: NOT_FOUND")
    assert "box-team" not in bob.ok("project", "list")
    assert bob.fails("project", "set", "box-team", "volume_max=70").startswith("stbctl: NOT_FOUND")

    out = alice.ok("project", "members", "add", "box-team", bob.id, "viewer", "--username", "bob")
    assert out.strip() == f"bob ({bob.id}) is viewer of box-team"
    members = alice.ok("project", "members", "box-team").splitlines()
    assert members[0].split() == ["USER_ID", "USERNAME", "ROLE", "ADDED"]
    roles = {line.split()[1]: line.split()[2] for line in members[1:]}
    assert roles == {"alice": "owner", "bob": "viewer"}, members

    # A viewer member reads, but may not change the draft or the members.
    assert bob.show("box-team")["project"]["my_role"] == "viewer"
    assert bob.fails("project", "set", "box-team", "volume_max=70").startswith("stbctl: PERMISSION_DENIED")
    assert bob.fails("project", "members", "add", "box-team", bob.id, "owner").startswith("stbctl: PERMISSION_DENIED")

    # By username: the project service looks bob up at the gateway.
    assert alice.ok("project", "members", "add", "box-team", "bob", "editor").strip() == f"bob ({bob.id}) is editor of box-team"
    bob.ok("project", "set", "box-team", "volume_max=70")
    assert option(alice.show("box-team"), "volume_max")["value"] == 70

    assert alice.ok("project", "members", "remove", "box-team", bob.id).strip() == f"removed {bob.id} from box-team"
    assert bob.fails("project", "show", "box-team").startswith("stbctl: NOT_FOUND")
    # The platform role is a floor: a viewer account cannot change a project at all.
    vera = users["vera"]
    alice.ok("project", "members", "add", "box-team", vera.id, "editor", "--username", "vera")
    assert alice.fails("project", "members", "add", "box-team", "nobody", "viewer").startswith("stbctl: INVALID_ARGUMENT")
    assert vera.fails("project", "set", "box-team", "volume_max=60").startswith("stbctl: PERMISSION_DENIED")
    usage = alice.run("project", "members", "add", "box-team", vera.id, "superuser")
    assert usage.returncode == 2 and "role must be viewer, editor, approver or owner" in usage.stderr, usage.stderr


# -- audit -----------------------------------------------------------------------------------


def test_audit_lists_changes_and_verifies_the_chain(alice):
    new_project(alice, "box-audit")
    alice.ok("project", "set", "box-audit", "ui_language=de")
    rows = audit_rows(alice, "box-audit")
    assert [row["entity"] for row in rows][:2] == ["project", "member"]
    assert rows[-1]["actor"] == "alice" and rows[-1]["actor_id"] == alice.id
    assert all(len(row["row_hash"]) == 64 for row in rows)
    assert rows[1]["previous_row_hash"] == rows[0]["row_hash"]
    table = alice.ok("project", "audit", "box-audit").splitlines()
    assert table[0].split()[:4] == ["ID", "AT", "ACTOR", "ACTION"] and len(table) == len(rows) + 1
    assert alice.ok("project", "audit", "verify", "box-audit").strip() == (
        f"audit log of box-audit intact: {len(rows)} rows")


# -- versions, signoffs, change requests -----------------------------------------------------


def skip_if_unbuilt(result: subprocess.CompletedProcess):
    if result.returncode != 0 and "UNIMPLEMENTED" in result.stderr:
        pytest.skip("the project service does not serve this yet: " + result.stderr.strip())


def test_versions_diff_and_signoff(alice, users):
    new_project(alice, "box-versions")
    alice.ok("project", "set", "box-versions", "ui_language=de")
    first = alice.run("project", "commit", "box-versions", "-m", "first")
    skip_if_unbuilt(first)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("committed box-versions version 1; hash ")
    alice.ok("project", "set", "box-versions", "ui_language=fr", "volume_max=90")
    alice.ok("project", "commit", "box-versions", "-m", "second")

    versions = alice.ok("project", "versions", "box-versions").splitlines()
    assert [line.split()[0] for line in versions[1:]] == ["2", "1"]
    diff = alice.ok("project", "diff", "box-versions", "1", "2").splitlines()
    assert '~ ui_language "de" -> "fr"' in diff and "~ volume_max 80 -> 90" in diff, diff
    assert alice.ok("project", "diff", "box-versions", "2", "draft").splitlines()[-1] == "no differences"

    alice.ok("project", "aspects", "box-versions", "security:approver", "quality:editor")
    status = alice.ok("project", "status", "box-versions").splitlines()
    assert status[0].startswith("box-versions version 2: not released")
    assert "  missing security" in status and "  missing quality" in status
    alice.ok("project", "signoff", "box-versions", "2", "security", "--notes", "checked")
    alice.ok("project", "signoff", "box-versions", "2", "quality")
    assert alice.ok("project", "status", "box-versions").startswith("box-versions version 2: released")


def test_change_request_review_and_apply(alice, users):
    bob = users["bob"]
    new_project(alice, "box-requests")
    alice.ok("project", "members", "add", "box-requests", bob.id, "approver", "--username", "bob")
    commit = alice.run("project", "commit", "box-requests", "-m", "base")
    skip_if_unbuilt(commit)
    assert commit.returncode == 0, commit.stderr
    created = alice.run("project", "request", "create", "box-requests", "--base", "1", "volume_max=85",
                        "--reason", "quieter")
    skip_if_unbuilt(created)
    assert created.returncode == 0, created.stderr
    request_id = created.stdout.split("change request ")[1].split()[0]
    assert "pending" in alice.ok("project", "requests", "box-requests", "--status", "pending")
    assert alice.fails("project", "request", "review", "box-requests", request_id, "approve")  # its author
    assert "approved" in bob.ok("project", "request", "review", "box-requests", request_id, "approve")
    applied = alice.ok("project", "request", "apply", "box-requests", request_id)
    assert "applied" in applied, applied
    assert option(alice.show("box-requests"), "volume_max")["value"] == 85


# -- addresses -------------------------------------------------------------------------------


def test_unreachable_project_service(alice):
    port = _free_port()
    error = alice.fails("project", "list", "--project-addr", f"127.0.0.1:{port}")
    assert error.startswith(f"stbctl: cannot reach the project service at 127.0.0.1:{port}"), error


def test_bad_project_addr_is_a_usage_error(alice):
    result = alice.run("project", "list", "--project-addr", "no-port")
    assert result.returncode == 2 and "project service address 'no-port'" in result.stderr, result.stderr
