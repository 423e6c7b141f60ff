"""The project service (projectd) through a stock grpcio client, with real catalogd and
rulesd behind it and the demo seed's catalog and rules.

Fixtures (conftest.py): `project_server` (a projectd per module on a fresh project
database, following this module's catalogd and checking selections with its rulesd,
ready once health is SERVING), `rules_server`, `catalog_server` and `stubs`. Callers are
PyJWT-minted tokens (auth_tokens.py): alice owns the projects under test, mallory is an
engineer who owns a project of her own and is a member of nothing else.

What is checked: a refused selection writes nothing (draft, audit, versions, events) and
its FAILED_PRECONDITION carries a PreconditionFailure naming each broken rule, read with
grpcio-status; the configuration hash equals SHA-256 of Python's RFC 8785 canonical form
of the effective configuration read from GetProjectConfig's tree; a non-member gets
NOT_FOUND from every RPC of stb.project.v1.Projects (enumerated from the descriptor),
PERMISSION_DENIED from the platform-wide ones, and no rows from any project table at the
SQL level under row-level security; an audit row edited or removed as the database
superuser is named by VerifyAudit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import grpc
import pytest
import rfc8785
from google.protobuf import message_factory
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import auth_tokens
from conftest import REPO, _database_url, own_catalog_database

pytestmark = pytest.mark.skipif(
    not (os.environ.get("STB_CATALOGD_BIN") and os.environ.get("STB_RULESD_BIN")
         and os.environ.get("STB_PROJECTD_BIN")),
    reason="STB_CATALOGD_BIN, STB_RULESD_BIN and STB_PROJECTD_BIN must be set: these tests need "
           "catalogd, rulesd and projectd",
)

TIMEOUT = 30
DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"
ADMIN = auth_tokens.mint("admin", "pytest-project-admin")
ALICE = auth_tokens.mint("engineer", "alice")
MALLORY = auth_tokens.mint("engineer", "mallory")
ALICE_ID, MALLORY_ID = "user:alice", "user:mallory"


@pytest.fixture(scope="module")
def catalog_database():
    with own_catalog_database("project") as url:
        yield url


@pytest.fixture(scope="module")
def seeded(catalog_server, rules_server, stubs):
    """The demo seed in this module's catalog and its rules in this module's rulesd, before
    projectd starts (so it starts on the demo catalog)."""
    cpb, rpb = stubs.catalog_pb2, stubs.rules_pb2
    metadata = auth_tokens.metadata(ADMIN)
    with catalog_server.channel(token=ADMIN) as channel:
        catalog = stubs.catalog_grpc.CatalogStub(channel)
        imported = catalog.ImportSeed(cpb.ImportSeedRequest(document_json=DEMO_SEED.read_text(), file_name="demo.json"),
                                      metadata=metadata, timeout=TIMEOUT)
    with rules_server.channel(token=ADMIN) as channel:
        rules = stubs.rules_grpc.RulesStub(channel)
        # rulesd follows the catalog: its rules can name the seed's options once it has them.
        deadline = time.monotonic() + TIMEOUT
        while rules.CheckRules(rpb.CheckRulesRequest(), timeout=TIMEOUT).catalog_revision < imported.revision:
            assert time.monotonic() < deadline, "rulesd did not catch up with the catalog"
            time.sleep(0.1)
        rules.ImportRules(rpb.ImportRulesRequest(document_json=DEMO_SEED.read_text(), file_name="demo.json"),
                          metadata=metadata, timeout=TIMEOUT)
    return imported.revision


@pytest.fixture(scope="module")
def ppb(stubs):
    return stubs.project_pb2


@pytest.fixture(scope="module")
def server(seeded, project_server):
    return project_server


@pytest.fixture(scope="module")
def alice(server, stubs):
    with server.channel(token=ALICE) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield stubs.project_grpc.ProjectsStub(channel)


@pytest.fixture(scope="module")
def mallory(server, stubs):
    with server.channel(token=MALLORY) as channel:
        yield stubs.project_grpc.ProjectsStub(channel)


def create(stub, ppb, key: str, name: str | None = None):
    return stub.CreateProject(ppb.CreateProjectRequest(key=key, name=name or f"Project {key}"), timeout=TIMEOUT)


def value(ppb, key: str, json_value) -> object:
    return ppb.OptionChange(key=key, value_json=json.dumps(json_value, ensure_ascii=False))


def include(ppb, key: str, included: bool = True) -> object:
    return ppb.OptionChange(key=key, include=included)


def set_options(stub, ppb, project: str, *changes):
    return stub.SetOptions(ppb.SetOptionsRequest(project_key=project, changes=list(changes)), timeout=TIMEOUT)


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def precondition_failure(error: grpc.RpcError) -> error_details_pb2.PreconditionFailure:
    status = rpc_status.from_call(error)
    assert status is not None, f"no grpc-status-details-bin on {error.code()}: {error.details()}"
    found = []
    for detail in status.details:
        message = error_details_pb2.PreconditionFailure()
        if detail.Is(message.DESCRIPTOR):
            detail.Unpack(message)
            found.append(message)
    assert len(found) == 1, f"expected one PreconditionFailure, got {status.details}"
    return found[0]


# -- SQL ---------------------------------------------------------------------------------


def psql(url: str, sql: str) -> list[list[str]]:
    """Rows of the last statement of `sql` (unaligned, tab-separated), run by psql on `url`."""
    result = subprocess.run(
        ["psql", url, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"psql failed ({result.returncode}) for {sql!r}:\n{result.stderr}"
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def superuser_url(project_database: str) -> str:
    """The project database as the cluster's superuser (row-level security and the audit
    table's append-only trigger do not stop it)."""
    admin = os.environ["STB_PG_ADMIN_URL"]
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(admin)
    user = parts.username or parse_qs(parts.query).get("user", ["postgres"])[0]
    database = urlsplit(project_database).path.lstrip("/")
    return _database_url(admin, user, database)


def project_tables(url: str) -> list[str]:
    """The tables of the project database that hold a project's rows: those with a
    project_id column, and projects itself."""
    rows = psql(url, """
        SELECT DISTINCT c.table_name FROM information_schema.columns c
        JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
        WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.column_name = 'project_id'
        ORDER BY 1""")
    return ["projects"] + [row[0] for row in rows]


def counts_as(url: str, user_id: str, role: str, tables: list[str], project_id: int) -> dict[str, int]:
    """Rows of each table naming `project_id`, seen by `url`'s role inside a transaction
    that carries `user_id` and `role` as the service sets them."""
    selects = " UNION ALL ".join(
        f"SELECT '{table}', count(*) FROM {table} WHERE {'id' if table == 'projects' else 'project_id'} = {int(project_id)}"
        for table in tables)
    rows = psql(url, f"""
        BEGIN;
        SELECT set_config('stb.user_id', '{user_id}', true), set_config('stb.role', '{role}', true);
        {selects};""")
    # psql prints the set_config row too: keep the counts.
    return {row[0]: int(row[1]) for row in rows if row[0] in tables}


# -- refused selections ------------------------------------------------------------------


def snapshot(stub, ppb, url: str, key: str) -> dict:
    """What a refused change must leave as it was: the project row, the draft's config,
    the audit log (through the API), and the stored options, versions, audit rows and
    events (as the superuser)."""
    project = stub.GetProject(ppb.ProjectRef(key=key), timeout=TIMEOUT)
    config = stub.GetProjectConfig(ppb.GetProjectConfigRequest(project_key=key), timeout=TIMEOUT)
    audit = stub.ListAudit(ppb.ListAuditRequest(project_key=key), timeout=TIMEOUT)
    pid = project.id
    stored = {
        table: psql(url, f"SELECT {columns} FROM {table} WHERE project_id = {pid} ORDER BY 1, 2")
        for table, columns in [("project_options", "option_key, included, value::text"),
                               ("versions", "number, encode(hash, 'hex')"),
                               ("audit_log", "id, encode(row_hash, 'hex')")]
    }
    stored["events"] = psql(url, "SELECT count(*), coalesce(max(id), 0) FROM events")
    stored["project"] = psql(url, f"SELECT encode(draft_hash, 'hex'), valid, draft_revision, latest_version FROM projects WHERE id = {pid}")
    return {
        "draft_hash": project.draft_hash, "valid": project.valid, "latest_version": project.latest_version,
        "config_hash": config.hash, "canonical": config.canonical_json,
        "audit": [(e.id, e.row_hash) for e in audit.entries], "stored": stored,
    }


def test_refused_selection_writes_nothing(alice, ppb, project_database):
    url = superuser_url(project_database)
    create(alice, ppb, "refusals")
    # The bitrate is not included by default: included first (one change per option and call).
    set_options(alice, ppb, "refusals", include(ppb, "max_video_bitrate_kbps"))
    accepted = set_options(alice, ppb, "refusals", value(ppb, "max_video_bitrate_kbps", 30000))
    assert accepted.changed and len(accepted.hash) == 32
    before = snapshot(alice, ppb, url, "refusals")
    assert ["max_video_bitrate_kbps", "t", "30000"] in before["stored"]["project_options"], before["stored"]
    assert len(before["audit"]) >= 4, before["audit"]  # created, owner added, two option changes

    # Inside the option's own bounds (1000..100000, step 500) but above the rule's 50000.
    error = refused(lambda: set_options(alice, ppb, "refusals", value(ppb, "max_video_bitrate_kbps", 60000)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    failure = precondition_failure(error)
    assert [(v.type, v.subject) for v in failure.violations] == [("RULE_VIOLATION", "video-bitrate-bound")], failure
    assert "max_video_bitrate_kbps=60000" in failure.violations[0].description, failure
    assert "50,000" in failure.violations[0].description, failure

    # A batch of one acceptable change and two that break rules: all or nothing, and each
    # broken rule listed with the options it refers to. (Both booleans default to true, so
    # including them turns them on; what they require is not included.)
    error = refused(lambda: set_options(
        alice, ppb, "refusals",
        value(ppb, "resolution", "720p"), include(ppb, "av1_decoding"), include(ppb, "dolby_atmos")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    failure = precondition_failure(error)
    subjects = {v.subject: v.description for v in failure.violations}
    assert {"av1-needs-hw-decoding", "atmos-needs-passthrough"} <= set(subjects), failure
    assert "audio_passthrough=excluded" in subjects["atmos-needs-passthrough"], failure
    assert all(v.type == "RULE_VIOLATION" for v in failure.violations), failure

    # Bad input is INVALID_ARGUMENT naming the field, and writes nothing either.
    for change, field in [(value(ppb, "no_such_option", 1), "changes[1].key"),
                          (value(ppb, "max_video_bitrate_kbps", "fast"), "changes[1].value_json"),
                          (value(ppb, "max_video_bitrate_kbps", 1234), "changes[1].value_json"),
                          (value(ppb, "tamper_detection", False), "changes[1].value_json")]:
        error = refused(lambda: set_options(alice, ppb, "refusals", value(ppb, "resolution", "720p"), change))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (change, error.code(), error.details())
        assert field in error.details(), (change, error.details())

    assert snapshot(alice, ppb, url, "refusals") == before

    # The same change, made acceptable, goes through: the refusals were about the rules.
    accepted = set_options(alice, ppb, "refusals", value(ppb, "max_video_bitrate_kbps", 50000))
    assert accepted.changed and accepted.hash != before["draft_hash"]


# -- canonical hash ----------------------------------------------------------------------


def effective(config) -> dict:
    """The effective configuration from the tree: included option key -> effective value."""
    options = [option for module in config.modules for group in module.groups for option in group.options]
    assert len({option.key for option in options}) == len(options), "an option appears twice in the tree"
    return {option.key: json.loads(option.value_json) for option in options if option.included}


def test_hash_is_sha256_of_rfc8785_form(alice, ppb):
    create(alice, ppb, "hashing")
    # One change per option and call: an option is included in one stage, valued in the next.
    stages = [
        [],
        [include(ppb, "max_video_bitrate_kbps"), value(ppb, "resolution", "576p"), include(ppb, "wifi_ssid"),
         include(ppb, "parental_pin_hint"), include(ppb, "audio_description")],
        # Strings that canonicalisation must escape or keep: quotes, backslashes, controls,
        # non-ASCII, astral and line-separator characters.
        [value(ppb, "max_video_bitrate_kbps", 42000), value(ppb, "wifi_ssid", 'Café "Ü" \\ \u007f 🚀\u2028'),
         value(ppb, "parental_pin_hint", "tab\tnew\nline \u001f end")],
        [include(ppb, "playready_enabled", False), value(ppb, "audio_description", True)],
        [ppb.OptionChange(key="resolution", reset_value=True), ppb.OptionChange(key="wifi_ssid", reset=True)],
    ]
    seen = set()
    for changes in stages:
        reply_hash = set_options(alice, ppb, "hashing", *changes).hash if changes else None
        config = alice.GetProjectConfig(ppb.GetProjectConfigRequest(project_key="hashing"), timeout=TIMEOUT)
        ours = rfc8785.dumps(effective(config))
        assert config.canonical_json.encode() == ours, (config.canonical_json, ours)
        assert config.hash == hashlib.sha256(ours).digest()
        project = alice.GetProject(ppb.ProjectRef(key="hashing"), timeout=TIMEOUT)
        assert project.draft_hash == config.hash
        if reply_hash is not None:
            assert reply_hash == config.hash
        seen.add(config.hash)
        unchanged = alice.GetProjectConfig(ppb.GetProjectConfigRequest(project_key="hashing", known_hash=config.hash),
                                           timeout=TIMEOUT)
        assert unchanged.unchanged and unchanged.hash == config.hash and not unchanged.modules
    assert len(seen) == len(stages)
    # The values that went in come back out, as the types the catalog gives them.
    final = effective(alice.GetProjectConfig(ppb.GetProjectConfigRequest(project_key="hashing"), timeout=TIMEOUT))
    assert final["max_video_bitrate_kbps"] == 42000 and final["resolution"] == "1080p"
    assert final["parental_pin_hint"] == "tab\tnew\nline \u001f end"
    assert "wifi_ssid" not in final or final["wifi_ssid"] == ""
    assert "playready_enabled" not in final and final["audio_description"] is True


# -- isolation ---------------------------------------------------------------------------

# The methods that name every project, for admins and service accounts only.
PLATFORM_WIDE = {"ListMemberships", "Watch"}


def project_methods(ppb):
    return list(ppb.DESCRIPTOR.services_by_name["Projects"].methods)


def request_naming(method, ppb, victim: str):
    """A minimal request of `method` that names the project `victim` (and, where a method
    needs more, something plausible: option 1, version 1, request 1, mallory as owner)."""
    request = message_factory.GetMessageClass(method.input_type)()
    fields = request.DESCRIPTOR.fields_by_name
    for name in ("project_key", "key"):
        if name in fields:
            setattr(request, name, victim)
    extras = {
        "SetMember": dict(user_id=MALLORY_ID, role=ppb.PROJECT_ROLE_OWNER),
        "RemoveMember": dict(user_id=ALICE_ID),
        "SetSignoffAspects": dict(aspects=[ppb.SignoffAspect(name="security", least_role=ppb.PROJECT_ROLE_VIEWER)]),
        "ListMemberships": dict(user_id=ALICE_ID),
        "SetOptions": dict(changes=[ppb.OptionChange(key="resolution", value_json='"720p"')]),
        "CreateChangeRequest": dict(changes=[ppb.OptionChange(key="resolution", value_json='"720p"')], reason="x"),
        "CommitVersion": dict(message="mine now"),
        "GetVersion": dict(number=1),
        "DiffVersions": dict(to=1),
        "Rollback": dict(to=1),
        "Signoff": dict(version=1, aspect="security"),
        "GetReleaseStatus": dict(version=1),
        "GetChangeRequest": dict(id=1),
        "ReviewChangeRequest": dict(id=1, approve=True),
        "ApplyChangeRequest": dict(id=1),
        "UpdateProject": dict(name="taken over", archived=True),
        "CreateProject": dict(name="squatter"),
    }.get(method.name, {})
    for name, field_value in extras.items():
        if isinstance(field_value, list):
            getattr(request, name).extend(field_value)
        else:
            setattr(request, name, field_value)
    return request


def invoke(channel, method, request):
    """(status code, reply or replies) of calling `method` with `request` on `channel`."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    reply_class = message_factory.GetMessageClass(method.output_type)
    kwargs = dict(request_serializer=lambda m: m.SerializeToString(), response_deserializer=reply_class.FromString)
    try:
        if method.server_streaming:
            # An allowed Watch stays open until its deadline: 5 s, room for a refusal to come first.
            stream = channel.unary_stream(path, **kwargs)(request, timeout=5)
            replies = []
            for reply in stream:
                replies.append(reply)
            return grpc.StatusCode.OK, replies
        return grpc.StatusCode.OK, channel.unary_unary(path, **kwargs)(request, timeout=TIMEOUT)
    except grpc.RpcError as error:
        return error.code(), error.details()


def test_non_member_gets_nothing_from_any_rpc(alice, mallory, ppb, server, project_database):
    victim = create(alice, ppb, "victim", "Victim's secret product")
    set_options(alice, ppb, "victim", value(ppb, "max_video_bitrate_kbps", 31500))
    alice.SetSignoffAspects(ppb.SetSignoffAspectsRequest(project_key="victim", aspects=[
        ppb.SignoffAspect(name="security", least_role=ppb.PROJECT_ROLE_APPROVER)]), timeout=TIMEOUT)
    # Mallory is a member (owner) of a project of her own: being a member somewhere must not
    # open any other project.
    create(mallory, ppb, "mallory-own")
    url = superuser_url(project_database)
    before = snapshot(alice, ppb, url, "victim")

    wrong = []
    checked = []
    with server.channel(token=MALLORY) as as_mallory, server.channel(token=ALICE) as as_alice:
        for method in project_methods(ppb):
            request = request_naming(method, ppb, "victim")
            code, reply = invoke(as_mallory, method, request)
            checked.append(method.name)
            if method.name in PLATFORM_WIDE:
                expected = {grpc.StatusCode.PERMISSION_DENIED}
            elif method.name == "CreateProject":
                # Keys are unique across projects: creating one by a taken key is refused
                # whoever holds it, and says nothing more than that the key is taken.
                expected = {grpc.StatusCode.ALREADY_EXISTS}
            elif method.name == "ListProjects":
                keys = [p.key for p in reply.projects] if code == grpc.StatusCode.OK else None
                if keys != ["mallory-own"]:
                    wrong.append(f"ListProjects: {code} {keys}")
                continue
            else:
                expected = {grpc.StatusCode.NOT_FOUND}
                # A method not written yet answers UNIMPLEMENTED to everybody, members too.
                member_code, _ = invoke(as_alice, method, request_naming(method, ppb, "missing-project"))
                if member_code == grpc.StatusCode.UNIMPLEMENTED:
                    expected.add(grpc.StatusCode.UNIMPLEMENTED)
            text = reply if isinstance(reply, str) else str(reply)
            if code not in expected:
                wrong.append(f"{method.name}: {code} {text[:200]!r} (expected {sorted(c.name for c in expected)})")
            elif "secret" in text or "31500" in text or ALICE_ID in text:
                wrong.append(f"{method.name}: the answer names the victim's data: {text[:200]!r}")
    assert len(checked) == len(project_methods(ppb)) >= 26
    assert not wrong, "a non-member reached another project:\n" + "\n".join(wrong)

    # Nothing she tried changed anything; alice still sees her project whole.
    assert snapshot(alice, ppb, url, "victim") == before
    members = alice.ListMembers(ppb.ProjectRef(key="victim"), timeout=TIMEOUT)
    assert [(m.user_id, m.role) for m in members.members] == [(ALICE_ID, ppb.PROJECT_ROLE_OWNER)]
    assert victim.id == alice.GetProject(ppb.ProjectRef(key="victim"), timeout=TIMEOUT).id


def test_non_member_sees_no_rows_under_row_level_security(alice, mallory, ppb, project_database):
    """At the SQL level, as the service's own role with mallory's identity set as the
    service sets it: no table shows a row of alice's project; with alice's identity the
    same queries do (so the check can fail)."""
    victim = create(alice, ppb, "victim-sql", "Victim's secret product")
    set_options(alice, ppb, "victim-sql", value(ppb, "max_video_bitrate_kbps", 31500))
    create(mallory, ppb, "mallory-sql")
    superuser = superuser_url(project_database)
    tables = project_tables(superuser)
    assert {"projects", "members", "project_options", "versions", "signoffs", "change_requests",
            "audit_log"} <= set(tables), tables

    # Every project table has row-level security, forced on its owner (the service's role,
    # which is neither a superuser nor exempt from RLS).
    flags = {name: (enabled, forced) for name, enabled, forced in psql(superuser, """
        SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
        WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace""")}
    assert all(flags[table] == ("t", "t") for table in tables), {t: flags[t] for t in tables}
    assert psql(project_database, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user") == [["f", "f"]]

    as_mallory = counts_as(project_database, MALLORY_ID, "engineer", tables, victim.id)
    assert as_mallory == {table: 0 for table in tables}, as_mallory
    # Without any identity set, nothing at all.
    nobody = psql(project_database, " UNION ALL ".join(f"SELECT count(*) FROM {t}" for t in tables))
    assert nobody == [["0"]] * len(tables), dict(zip(tables, nobody))
    # Mallory's identity with a viewer's, an operator's or an empty role: the same.
    for role in ("viewer", "operator", ""):
        assert counts_as(project_database, MALLORY_ID, role, tables, victim.id) == {t: 0 for t in tables}
    # Her writes touch nothing either.
    updated = psql(project_database, f"""
        BEGIN;
        SELECT set_config('stb.user_id', '{MALLORY_ID}', true), set_config('stb.role', 'engineer', true);
        WITH u AS (UPDATE projects SET name = 'taken' WHERE id = {victim.id} RETURNING 1) SELECT count(*) FROM u;""")
    assert updated[-1] == ["0"]
    # The control: alice's identity sees her rows through the same queries.
    as_alice = counts_as(project_database, ALICE_ID, "engineer", tables, victim.id)
    assert all(as_alice[t] > 0 for t in ("projects", "members", "project_options", "audit_log")), as_alice
    assert psql(superuser, f"SELECT name FROM projects WHERE id = {victim.id}") == [["Victim's secret product"]]


# -- audit chain -------------------------------------------------------------------------


def audit_rows(url: str, project_id: int) -> list[int]:
    return [int(row[0]) for row in psql(url, f"SELECT id FROM audit_log WHERE project_id = {project_id} ORDER BY id")]


def test_verify_audit_names_a_row_edited_as_superuser(alice, ppb, project_database):
    url = superuser_url(project_database)
    project = create(alice, ppb, "audited")
    for bitrate in (20000, 21000, 22000):
        set_options(alice, ppb, "audited", value(ppb, "max_video_bitrate_kbps", bitrate))
    verified = alice.VerifyAudit(ppb.ProjectRef(key="audited"), timeout=TIMEOUT)
    ids = audit_rows(url, project.id)
    # Created, owner added, three bitrates.
    assert verified.intact and verified.rows == len(ids) == 5, (verified, ids)

    # The service's own role cannot edit the log (append-only).
    error = subprocess.run(["psql", project_database, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                            f"BEGIN; SELECT set_config('stb.role', 'admin', true); "
                            f"UPDATE audit_log SET actor = 'x' WHERE id = {ids[3]};"],
                           capture_output=True, text=True, timeout=60)
    assert error.returncode != 0 and "append-only" in error.stderr, error.stderr

    # The superuser can: with triggers off, the first bitrate row's "after" says 1000, not 20000.
    psql(url, f"""
        SET session_replication_role = replica;
        UPDATE audit_log SET after = jsonb_set(after, '{{max_video_bitrate_kbps,value}}', '1000') WHERE id = {ids[3]};""")
    assert psql(url, f"SELECT after->'max_video_bitrate_kbps'->>'value' FROM audit_log WHERE id = {ids[3]}") == [["1000"]]
    verified = alice.VerifyAudit(ppb.ProjectRef(key="audited"), timeout=TIMEOUT)
    assert not verified.intact, verified
    assert verified.first_broken_id == ids[3], (verified, ids)
    assert "altered" in verified.problem, verified

    # A row removed: the row after the gap is named.
    other = create(alice, ppb, "audited-2")
    for bitrate in (20000, 21000):
        set_options(alice, ppb, "audited-2", value(ppb, "max_video_bitrate_kbps", bitrate))
    ids = audit_rows(url, other.id)
    assert alice.VerifyAudit(ppb.ProjectRef(key="audited-2"), timeout=TIMEOUT).intact
    psql(url, f"SET session_replication_role = replica; DELETE FROM audit_log WHERE id = {ids[2]};")
    verified = alice.VerifyAudit(ppb.ProjectRef(key="audited-2"), timeout=TIMEOUT)
    assert not verified.intact and verified.first_broken_id == ids[3], (verified, ids)
    assert "predecessor" in verified.problem, verified
    # The first project's chain is its own: still broken at its own row, no further.
    assert alice.VerifyAudit(ppb.ProjectRef(key="audited"), timeout=TIMEOUT).first_broken_id < ids[0]
