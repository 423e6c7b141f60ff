"""Alarms and saved dashboards at the gateway, end to end with a stock grpcio client:
a real catalogd, rulesd and projectd verify the gateway's tokens (keys from its GetKeys,
service accounts signing in there); gatewayd follows the project service's change feed
as its own service account. A rule that breaks a project's draft raises an alarm with
its severity and violations; a viewer member may not acknowledge it, an operator member
does; removing the rule clears it. `stbctl alarms` and `stbctl dashboards` run against
the same gateway.

Needs $STB_GATEWAYD_BIN, $STB_CATALOGD_BIN, $STB_RULESD_BIN, $STB_STBCTL_BIN, projectd
($STB_PROJECTD_BIN, else beside gatewayd) and the local cluster (`eval "$(scripts/db env)"`).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

from conftest import HOST, PROTOS, REPO, CatalogServer, _free_port, fresh_database, health_status

BINARIES = ("STB_GATEWAYD_BIN", "STB_CATALOGD_BIN", "STB_RULESD_BIN", "STB_STBCTL_BIN")
pytestmark = pytest.mark.skipif(
    not all(os.environ.get(name) for name in BINARIES), reason=f"{', '.join(BINARIES)} must be set")

TIMEOUT = 30
ADMIN, ADMIN_PASSWORD = "admin", "correct horse battery staple"
SECRETS = {name: f"{name}-secret-0123456789abcdef" for name in ("catalog", "rules", "project")}
DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"
PROJECT = "stb-alarm"
RULE = "resolution-must-be-4k"


class Server(CatalogServer):
    def __init__(self, name: str, binary: Path, log_path: Path, env: dict[str, str]):
        super().__init__(binary, log_path, env)
        self.name = name
        self.ready_prefix = f"{name} listening on ".encode()


def binary(variable: str, fallback: str | None = None) -> Path:
    configured = os.environ.get(variable)
    if configured:
        return Path(configured).resolve()
    return Path(os.environ["STB_GATEWAYD_BIN"]).resolve().parent / fallback


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    out = tmp_path_factory.mktemp("alarm-stubs")
    files = ["stb/common/v1/common.proto", "stb/catalog/v1/catalog.proto", "stb/rules/v1/rules.proto",
             "stb/project/v1/project.proto", "stb/gateway/v1/gateway.proto", "stb/gateway/v1/alarms.proto"]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}",
                    f"--grpc_python_out={out}", *files], check=True, timeout=60)
    sys.path.insert(0, str(out))
    try:
        modules = {}
        for name, module in (("catalog", "stb.catalog.v1.catalog"), ("rules", "stb.rules.v1.rules"),
                             ("project", "stb.project.v1.project"), ("gateway", "stb.gateway.v1.gateway"),
                             ("alarms", "stb.gateway.v1.alarms")):
            modules[name] = importlib.import_module(module + "_pb2")
            modules[name + "_grpc"] = importlib.import_module(module + "_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return SimpleNamespace(**modules)


def stop(server: Server):
    alive = server.alive()
    code = server.terminate(timeout=10)
    assert alive, f"{server.name} died during the tests\n{server.log_tail()}"
    assert code == 0, f"{server.name} exited with {code} after SIGTERM\n{server.log_tail()}"


def wait_serving(server: Server, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    with server.raw_channel() as channel:
        while True:
            try:
                if health_status(channel) == 1:
                    return
            except grpc.RpcError:
                pass
            assert server.alive() and time.monotonic() < deadline, f"{server.name} not SERVING\n{server.log_tail()}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """gatewayd, catalogd, rulesd and projectd on fresh databases, verifying the
    gateway's tokens; yields their addresses."""
    pid = os.getpid()
    logs = tmp_path_factory.mktemp("alarm-logs")
    project_port = _free_port()
    with fresh_database(f"gateway_al_{pid}", "gateway") as gateway_db, \
            fresh_database(f"catalog_al_{pid}", "catalog") as catalog_db, \
            fresh_database(f"rules_al_{pid}", "rules") as rules_db, \
            fresh_database(f"project_al_{pid}", "project") as project_db:
        gateway_env = {
            "GATEWAY_HOST": HOST, "GATEWAY_PORT": str(_free_port()), "GATEWAY_DATABASE_URL": gateway_db,
            "GATEWAY_MIGRATIONS_DIR": str(REPO / "services" / "gateway" / "migrations"),
            "GATEWAY_SERVICE_ACCOUNTS": ",".join(f"{name}:{secret}" for name, secret in SECRETS.items()),
            "GATEWAY_PROJECT_ADDR": f"{HOST}:{project_port}",
        }
        gatewayd = binary("STB_GATEWAYD_BIN")
        bootstrap = subprocess.run([str(gatewayd), "bootstrap-admin", ADMIN], input=ADMIN_PASSWORD + "\n",
                                   env={**os.environ, **gateway_env}, capture_output=True, text=True, timeout=60, cwd=REPO)
        assert bootstrap.returncode == 0, bootstrap.stderr
        gateway = Server("gatewayd", gatewayd, logs / "gatewayd.log", gateway_env).start()
        # Every other service takes its keys from the gateway and signs in there.
        common = {"STB_AUTH_KEYS_FILE": "", "STB_GATEWAY_ADDR": gateway.addr}
        started = [gateway]
        try:
            catalog = Server("catalogd", binary("STB_CATALOGD_BIN"), logs / "catalogd.log", {
                **common, "CATALOG_HOST": HOST, "CATALOG_PORT": str(_free_port()), "CATALOG_DATABASE_URL": catalog_db,
                "CATALOG_MIGRATIONS_DIR": str(REPO / "services" / "catalog" / "migrations"),
                "CATALOG_SERVICE_TOKEN": "", "CATALOG_SERVICE_SECRET": SECRETS["catalog"],
            }).start()
            started.append(catalog)
            rules = Server("rulesd", binary("STB_RULESD_BIN"), logs / "rulesd.log", {
                **common, "RULES_HOST": HOST, "RULES_PORT": str(_free_port()), "RULES_DATABASE_URL": rules_db,
                "RULES_MIGRATIONS_DIR": str(REPO / "services" / "rules" / "migrations"),
                "RULES_CATALOG_ADDR": catalog.addr, "RULES_SERVICE_TOKEN": "", "RULES_SERVICE_SECRET": SECRETS["rules"],
            }).start()
            started.append(rules)
            project = Server("projectd", binary("STB_PROJECTD_BIN", "projectd"), logs / "projectd.log", {
                **common, "PROJECT_HOST": HOST, "PROJECT_PORT": str(project_port), "PROJECT_DATABASE_URL": project_db,
                "PROJECT_MIGRATIONS_DIR": str(REPO / "services" / "project" / "migrations"),
                "PROJECT_CATALOG_ADDR": catalog.addr, "PROJECT_RULES_ADDR": rules.addr,
                "PROJECT_SERVICE_TOKEN": "", "PROJECT_SERVICE_SECRET": SECRETS["project"],
            }).start()
            started.append(project)
            wait_serving(rules)
            wait_serving(project)
            yield SimpleNamespace(gateway=gateway, catalog=catalog, rules=rules, project=project)
        finally:
            # The gateway first: its follower holds a Watch stream open on projectd, which
            # would otherwise wait out its drain period.
            for server in started[:1] + list(reversed(started[1:])):
                stop(server)
            log = (logs / "gatewayd.log").read_text(errors="replace")
            for secret in [ADMIN_PASSWORD, *SECRETS.values()]:
                assert secret not in log


def bearer(token: str):
    return (("authorization", f"Bearer {token}"),)


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def wait_for(what: str, probe, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_broken_project_raises_an_alarm_operators_acknowledge_and_a_fix_clears(platform, pb, tmp_path):
    gateway = platform.gateway.raw_channel()
    auth = pb.gateway_grpc.AuthStub(gateway)
    alarms = pb.alarms_grpc.AlarmsStub(gateway)
    dashboards = pb.alarms_grpc.DashboardsStub(gateway)
    catalog = pb.catalog_grpc.CatalogStub(platform.catalog.raw_channel())
    rules = pb.rules_grpc.RulesStub(platform.rules.raw_channel())
    projects = pb.project_grpc.ProjectsStub(platform.project.raw_channel())

    admin = auth.Login(pb.gateway.LoginRequest(username=ADMIN, password=ADMIN_PASSWORD), timeout=TIMEOUT).access_token
    tokens = {}
    for name, role in (("vic", pb.gateway.ROLE_VIEWER), ("oona", pb.gateway.ROLE_OPERATOR), ("nemo", pb.gateway.ROLE_OPERATOR)):
        password = f"{name} password 0123456"
        auth.CreateUser(pb.gateway.CreateUserRequest(username=name, role=role, password=password), metadata=bearer(admin), timeout=TIMEOUT)
        tokens[name] = auth.Login(pb.gateway.LoginRequest(username=name, password=password), timeout=TIMEOUT).access_token

    seeded = catalog.ImportSeed(pb.catalog.ImportSeedRequest(document_json=DEMO_SEED.read_text(), file_name="demo.json"),
                                metadata=bearer(admin), timeout=TIMEOUT)
    assert seeded.revision > 0
    wait_for("projectd's catalog copy", lambda: _create_project(projects, pb, admin))
    for name in ("vic", "oona"):
        projects.SetMember(pb.project.SetMemberRequest(project_key=PROJECT, username=name, role=pb.project.PROJECT_ROLE_VIEWER),
                           metadata=bearer(admin), timeout=TIMEOUT)

    def listed(token, **filters):
        return list(alarms.ListAlarms(pb.alarms.ListAlarmsRequest(project_key=PROJECT, **filters), metadata=bearer(token),
                                      timeout=TIMEOUT).alarms)

    assert listed(admin) == []
    # A rule the project's draft (resolution 1080p by default) breaks.
    rule = pb.rules.Rule(key=RULE, subject="resolution", type=pb.rules.RULE_TYPE_VALIDATION,
                         payload_json=json.dumps({"logic": {"==": [{"var": "resolution"}, "4k"]}}),
                         severity=pb.rules.SEVERITY_ERROR, message="only 4k", active=True)
    wait_for("rulesd's catalog copy", lambda: _create_rule(rules, pb, admin, rule))

    raised = wait_for("the alarm", lambda: listed(admin))
    assert len(raised) == 1
    alarm = raised[0]
    assert alarm.status == pb.alarms.ALARM_STATUS_ACTIVE
    assert alarm.severity == pb.alarms.ALARM_SEVERITY_CRITICAL
    assert [v.rule_key for v in alarm.violations] == [RULE]
    assert alarm.violations[0].severity == pb.rules.SEVERITY_ERROR
    # Members see it, others do not.
    assert [a.id for a in listed(tokens["vic"])] == [alarm.id]
    assert listed(tokens["nemo"]) == []

    def acknowledge(token, note=""):
        return alarms.AcknowledgeAlarm(pb.alarms.AcknowledgeAlarmRequest(id=alarm.id, note=note), metadata=bearer(token), timeout=TIMEOUT)

    assert code_of(lambda: acknowledge(tokens["vic"])) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: acknowledge(tokens["nemo"])) == grpc.StatusCode.NOT_FOUND
    acknowledged = acknowledge(tokens["oona"], note="on it")
    assert acknowledged.status == pb.alarms.ALARM_STATUS_ACKNOWLEDGED
    assert acknowledged.acknowledged_by == "oona" and acknowledged.acknowledgement_note == "on it"
    assert acknowledged.acknowledged_at_ms > 0

    # stbctl lists it for the operator.
    env = {**os.environ, "STB_TOKEN": tokens["oona"], "STB_GATEWAY_ADDR": platform.gateway.addr, "XDG_CONFIG_HOME": str(tmp_path)}
    out = subprocess.run([os.environ["STB_STBCTL_BIN"], "alarms", "--project", PROJECT, "--status", "acknowledged"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert PROJECT in out.stdout and "critical" in out.stdout and "oona" in out.stdout and RULE in out.stdout

    # The fix: the rule goes, the project is valid again, the alarm clears.
    rules.DeleteRule(pb.rules.RuleRef(key=RULE), metadata=bearer(admin), timeout=TIMEOUT)
    cleared = wait_for("the alarm to clear", lambda: listed(admin, status=pb.alarms.ALARM_STATUS_CLEARED))
    assert [a.id for a in cleared] == [alarm.id]
    assert cleared[0].cleared_at_ms > 0
    assert listed(admin, status=pb.alarms.ALARM_STATUS_ACTIVE) == []

    # The alarm's history is on the gateway's feed.
    stream = alarms.WatchAlarms(pb.alarms.WatchAlarmsRequest(after="0:0"), metadata=bearer(admin), timeout=TIMEOUT)
    statuses = []
    for event in stream:
        statuses.append(event.alarm.status)
        if len(statuses) == 3:
            stream.cancel()
            break
    assert statuses == [pb.alarms.ALARM_STATUS_ACTIVE, pb.alarms.ALARM_STATUS_ACKNOWLEDGED, pb.alarms.ALARM_STATUS_CLEARED]
    assert code_of(lambda: next(iter(alarms.WatchAlarms(pb.alarms.WatchAlarmsRequest(), metadata=bearer(tokens["oona"]),
                                                         timeout=TIMEOUT)))) == grpc.StatusCode.PERMISSION_DENIED

    # Dashboards through stbctl: create from a file, list, show, delete.
    document = tmp_path / "ops.json"
    document.write_text(json.dumps({"name": "ops", "description": "alarms", "shared": True, "layout": {"widgets": [
        {"type": "alarm_list", "x": 0, "y": 0, "w": 6, "h": 4, "topic": f"alarms/{PROJECT}"}]}}))
    created = subprocess.run([os.environ["STB_STBCTL_BIN"], "dashboards", "create", str(document)],
                             env=env, capture_output=True, text=True, timeout=30)
    assert created.returncode == 0, created.stderr
    dashboard_id = created.stdout.split()[2]
    shown = subprocess.run([os.environ["STB_STBCTL_BIN"], "dashboards", "show", dashboard_id],
                           env={**env, "STB_TOKEN": tokens["vic"]}, capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["layout"]["widgets"][0]["topic"] == f"alarms/{PROJECT}"
    document.write_text(json.dumps({"name": "bad", "layout": {"widgets": [{"type": "alarm_list", "x": -1, "y": 0, "w": 1, "h": 1}]}}))
    refused = subprocess.run([os.environ["STB_STBCTL_BIN"], "dashboards", "create", str(document)],
                             env=env, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 1 and "layout_json.widgets[0].x" in refused.stderr, refused.stderr
    assert code_of(lambda: dashboards.DeleteDashboard(pb.alarms.DeleteDashboardRequest(id=int(dashboard_id)),
                                                      metadata=bearer(tokens["vic"]), timeout=TIMEOUT)) == grpc.StatusCode.PERMISSION_DENIED
    deleted = subprocess.run([os.environ["STB_STBCTL_BIN"], "dashboards", "delete", dashboard_id],
                             env=env, capture_output=True, text=True, timeout=30)
    assert deleted.returncode == 0, deleted.stderr


def _create_rule(rules, pb, admin, rule) -> bool:
    """Creates `rule`; False while rulesd's copy of the catalog has not yet caught up with
    the import (its option is "not in the catalog" there)."""
    try:
        rules.CreateRule(pb.rules.CreateRuleRequest(rule=rule), metadata=bearer(admin), timeout=TIMEOUT)
        return True
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT and "is not in the catalog" in (error.details() or ""):
            return False
        raise


def _create_project(projects, pb, admin) -> bool:
    try:
        projects.CreateProject(pb.project.CreateProjectRequest(key=PROJECT, name="Alarm test"), metadata=bearer(admin), timeout=TIMEOUT)
        return True
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.ALREADY_EXISTS:
            return True
        if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION):
            return False
        raise
