"""stubd, the stub server, with stock grpcio clients: mocks of stb.rules.v1.Rules and
stb.testing.v1.Echo answer from stubs in a file (reloaded when it changes) and from the
admin API (stb.stubs.v1.Stubs, stored in a fresh `stubs` database).

Needs $STB_STUBD_BIN (else .build/debug/stubd) and the database environment of
`eval "$(scripts/db env)"`.
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

import auth_tokens
from conftest import CHANNEL_OPTIONS, PROTOS, REPO, CatalogServer, _free_port, fresh_database


class StubServer(CatalogServer):
    name = "stubd"
    ready_prefix = b"stubd listening on "


def stubd_binary() -> Path:
    configured = os.environ.get("STB_STUBD_BIN")
    path = Path(configured) if configured else REPO / ".build" / "debug" / "stubd"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"stubd not found at {path}; build it (swift build --product stubd) or set STB_STUBD_BIN",
                    pytrace=False)
    return path


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """Python messages and stubs of stb.stubs.v1, stb.rules.v1 and stb.testing.v1."""
    out = tmp_path_factory.mktemp("stubs_api")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}",
         f"--grpc_python_out={out}", "stb/stubs/v1/stubs.proto", "stb/rules/v1/rules.proto",
         "stb/common/v1/common.proto", "stb/testing/v1/echo.proto"],
        check=True, timeout=60,
    )
    sys.path.insert(0, str(out))
    try:
        names = {
            "stubs_pb2": "stb.stubs.v1.stubs_pb2", "stubs_grpc": "stb.stubs.v1.stubs_pb2_grpc",
            "rules_pb2": "stb.rules.v1.rules_pb2", "rules_grpc": "stb.rules.v1.rules_pb2_grpc",
            "echo_pb2": "stb.testing.v1.echo_pb2", "echo_grpc": "stb.testing.v1.echo_pb2_grpc",
        }
        modules = {key: importlib.import_module(name) for key, name in names.items()}
    finally:
        sys.path.remove(str(out))
    return SimpleNamespace(**modules)


RULES_MOCK_PORT = None

FILE_STUBS = {
    "mocks": [{"service": "stb.rules.v1.Rules", "port": 0}, {"service": "stb.testing.v1.Echo", "port": 0}],
    "stubs": [
        {   # The default answer: every selection is valid.
            "id": "evaluate-valid", "service": "stb.rules.v1.Rules", "method": "Evaluate",
            "response": {"message": {"valid": True, "selectionHash": "ZGVmYXVsdA=="}},
        },
        {   # A selection that includes hdr gets a violation (higher priority wins).
            "id": "evaluate-hdr", "service": "stb.rules.v1.Rules", "method": "Evaluate", "priority": 10,
            "when": {"and": [
                {"field": "options[0].key", "op": "EQUALS", "value": "hdr"},
                {"not": {"metadata": "x-skip", "op": "EXISTS"}},
            ]},
            "response": {"message": {"valid": False, "violations": [{"ruleKey": "hdr-needs-4k", "message": "hdr requires 4k_output"}]},
                         "headers": {"x-stub": "hdr"}},
        },
        {   # Tenants named by a pattern are refused with a status and details.
            "id": "evaluate-tenant", "service": "stb.rules.v1.Rules", "method": "Evaluate", "priority": 20,
            "when": {"metadata": "x-tenant", "op": "REGEX", "value": "blocked-[0-9]+"},
            "response": {"status": {"code": "PERMISSION_DENIED", "message": "tenant blocked",
                                    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "TENANT_BLOCKED", "domain": "stubs"}]}},
        },
        {   # Two answers in turn, then the last again.
            "id": "echo-sequence", "service": "stb.testing.v1.Echo", "method": "Get",
            "when": {"field": "text", "op": "CONTAINS", "value": "seq"},
            "sequence": [{"message": {"text": "first"}}, {"message": {"text": "second"}}],
        },
        {   # Only twice.
            "id": "echo-twice", "service": "stb.testing.v1.Echo", "method": "Get", "times": 2,
            "when": {"field": "count", "op": "GREATER_THAN", "value": 5},
            "response": {"message": {"text": "big"}},
        },
        {   # A server stream with a delay between messages.
            "id": "echo-stream", "service": "stb.testing.v1.Echo", "method": "Expand",
            "response": {"messages": [{"message": {"text": "a", "index": 0}}, {"message": {"text": "b", "index": 1}, "delayMs": 50}]},
        },
        {   # A fixed delay.
            "id": "echo-slow", "service": "stb.testing.v1.Echo", "method": "Get",
            "when": {"field": "text", "op": "EQUALS", "value": "slow"}, "delay": {"fixedMs": 300},
            "response": {"message": {"text": "late"}},
        },
    ],
}


@pytest.fixture(scope="module")
def stub_server(tmp_path_factory):
    stubd_binary()
    folder = tmp_path_factory.mktemp("stubd")
    stub_file = folder / "stubs.json"
    stub_file.write_text(json.dumps(FILE_STUBS))
    with fresh_database(f"stubs_it_{os.getpid()}", "stubs") as url:
        server = StubServer(stubd_binary(), folder / "stubd.log", {
            "STUBS_PORT": str(_free_port()),
            "STUBS_DATABASE_URL": url,
            "STUBS_MIGRATIONS_DIR": str(REPO / "services" / "stubs" / "migrations"),
            "STUBS_FILE": str(stub_file),
        }).start()
        server.stub_file = stub_file
        try:
            yield server
        finally:
            server.kill()


def admin(server, api):
    return api.stubs_grpc.StubsStub(server.channel())


def mock_port(server, api, service: str) -> int:
    mocks = admin(server, api).ListMocks(api.stubs_pb2.ListMocksRequest(), timeout=30).mocks
    return next(m.port for m in mocks if m.service == service)


def mock_channel(server, api, service: str) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{mock_port(server, api, service)}", options=CHANNEL_OPTIONS)


def choice(api, key: str):
    return api.rules_pb2.OptionChoice(key=key, included=True)


def test_routes_by_condition_and_priority(stub_server, api):
    admin(stub_server, api).ResetJournal(api.stubs_pb2.ResetJournalRequest(), timeout=30)
    with mock_channel(stub_server, api, "stb.rules.v1.Rules") as channel:
        rules = api.rules_grpc.RulesStub(channel)
        plain = rules.Evaluate(api.rules_pb2.EvaluateRequest(options=[choice(api, "dolby")]), timeout=30)
        assert plain.valid and plain.selection_hash == b"default"
        reply, call = rules.Evaluate.with_call(api.rules_pb2.EvaluateRequest(options=[choice(api, "hdr")]), timeout=30)
        assert not reply.valid and reply.violations[0].rule_key == "hdr-needs-4k"
        assert ("x-stub", "hdr") in call.initial_metadata()
        # NOT: the metadata x-skip turns the hdr route off.
        skipped = rules.Evaluate(api.rules_pb2.EvaluateRequest(options=[choice(api, "hdr")]), metadata=[("x-skip", "1")], timeout=30)
        assert skipped.valid
        with pytest.raises(grpc.RpcError) as refused:
            rules.Evaluate(api.rules_pb2.EvaluateRequest(options=[choice(api, "hdr")]),
                           metadata=[("x-tenant", "blocked-42"), ("authorization", "Bearer secret-token-value")], timeout=30)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert refused.value.details() == "tenant blocked"
    stubs = admin(stub_server, api)
    assert stubs.Verify(api.stubs_pb2.VerifyRequest(stub_id="evaluate-hdr", count=1), timeout=30).count == 1
    assert stubs.Verify(api.stubs_pb2.VerifyRequest(stub_id="evaluate-valid", count=2), timeout=30).count == 2
    with pytest.raises(grpc.RpcError) as wrong:
        stubs.Verify(api.stubs_pb2.VerifyRequest(stub_id="evaluate-tenant", count=3), timeout=30)
    assert wrong.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "matched 1 calls, not 3" in wrong.value.details()
    journal = stubs.GetJournal(api.stubs_pb2.GetJournalRequest(limit=10), timeout=30)
    assert journal.calls == 4 and journal.unmatched == 0
    newest = journal.entries[0]
    assert newest.stub_id == "evaluate-tenant" and newest.status_code == 7
    assert json.loads(newest.request_json) == {"options": [{"key": "hdr", "included": True}]}
    # Credentials never reach the journal.
    assert newest.metadata["authorization"] == "[redacted]"
    assert "secret-token-value" not in str(journal)


def test_sequence_times_streams_and_delays(stub_server, api):
    with mock_channel(stub_server, api, "stb.testing.v1.Echo") as channel:
        echo = api.echo_grpc.EchoStub(channel)
        texts = [echo.Get(api.echo_pb2.EchoRequest(text="seq"), timeout=30).text for _ in range(3)]
        assert texts == ["first", "second", "second"]
        assert [echo.Get(api.echo_pb2.EchoRequest(count=9), timeout=30).text for _ in range(2)] == ["big", "big"]
        # Its two times are used up: nothing else matches, so the call is UNIMPLEMENTED and
        # the journal says why each stub missed.
        with pytest.raises(grpc.RpcError) as unmatched:
            echo.Get(api.echo_pb2.EchoRequest(count=9), timeout=30)
        assert unmatched.value.code() == grpc.StatusCode.UNIMPLEMENTED
        streamed = list(echo.Expand(api.echo_pb2.EchoRequest(text="x"), timeout=30))
        assert [(m.text, m.index) for m in streamed] == [("a", 0), ("b", 1)]
        started = time.monotonic()
        assert echo.Get(api.echo_pb2.EchoRequest(text="slow"), timeout=30).text == "late"
        assert time.monotonic() - started >= 0.3
    journal = admin(stub_server, api).GetJournal(api.stubs_pb2.GetJournalRequest(limit=50), timeout=30)
    miss = next(e for e in journal.entries if e.stub_id == "")
    assert any(m.startswith("echo-twice: its 2 times are used up") for m in miss.near_misses), miss
    assert any(m.startswith("echo-sequence: field text CONTAINS") for m in miss.near_misses), miss


def test_admin_api_stubs_are_checked_stored_and_served(stub_server, api):
    stubs = admin(stub_server, api)
    saved = stubs.PutStub(api.stubs_pb2.PutStubRequest(definition_json=json.dumps({
        "service": "stb.testing.v1.Echo", "method": "Get", "priority": 50,
        "when": {"field": "text", "op": "EQUALS", "value": "api"},
        "response": {"message": {"text": "from the api"}},
    })), timeout=30)
    assert saved.id.startswith("stub-") and saved.source == "api"
    with mock_channel(stub_server, api, "stb.testing.v1.Echo") as channel:
        assert api.echo_grpc.EchoStub(channel).Get(api.echo_pb2.EchoRequest(text="api"), timeout=30).text == "from the api"
    assert saved.id in [s.id for s in stubs.ListStubs(api.stubs_pb2.ListStubsRequest(service="stb.testing.v1.Echo"), timeout=30).stubs]
    # Checked against the method's output type when saved, not when called.
    for definition, where in [
        ({"service": "stb.testing.v1.Echo", "method": "Get", "response": {"message": {"txt": "x"}}}, "response.message"),
        ({"service": "stb.testing.v1.Echo", "method": "Nope", "response": {"message": {}}}, "method"),
        ({"service": "stb.testing.v1.Echo", "method": "Get", "when": {"field": "text", "op": "REGEX", "value": "(a"}, "response": {"message": {}}}, "when.value"),
        ({"service": "stb.testing.v1.Echo", "method": "Get", "when": {"field": "text", "op": "LIKE", "value": "a"}, "response": {"message": {}}}, "when.op"),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            stubs.PutStub(api.stubs_pb2.PutStubRequest(definition_json=json.dumps(definition)), timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"definition_json.{where}" in refused.value.details(), refused.value.details()
    # A file stub is changed in its file, not here.
    with pytest.raises(grpc.RpcError) as owned:
        stubs.DeleteStub(api.stubs_pb2.StubRef(id="echo-slow"), timeout=30)
    assert owned.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    stubs.DeleteStub(api.stubs_pb2.StubRef(id=saved.id), timeout=30)
    with pytest.raises(grpc.RpcError) as gone:
        stubs.GetStub(api.stubs_pb2.StubRef(id=saved.id), timeout=30)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def test_writes_need_an_admin(stub_server, api):
    with stub_server.channel(token=auth_tokens.mint("engineer")) as channel:
        stubs = api.stubs_grpc.StubsStub(channel)
        stubs.ListStubs(api.stubs_pb2.ListStubsRequest(), timeout=30)
        with pytest.raises(grpc.RpcError) as denied:
            stubs.PutStub(api.stubs_pb2.PutStubRequest(definition_json="{}"), timeout=30)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # Faults and delays set at run time change what the mocks answer: admins only.
        for call, request in ((stubs.SetFault, api.stubs_pb2.SetFaultRequest(mock="stb.rules.v1.Rules", fault_json='{"kind": "GOAWAY"}')),
                              (stubs.SetDelay, api.stubs_pb2.SetDelayRequest(mock="stb.rules.v1.Rules", delay_json='{"fixedMs": 1}'))):
            with pytest.raises(grpc.RpcError) as denied:
                call(request, timeout=30)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with stub_server.raw_channel() as channel:
        with pytest.raises(grpc.RpcError) as anonymous:
            api.stubs_grpc.StubsStub(channel).ListStubs(api.stubs_pb2.ListStubsRequest(), timeout=30)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_file_is_reloaded_on_change_and_a_bad_file_changes_nothing(stub_server, api):
    changed = json.loads(json.dumps(FILE_STUBS))
    changed["stubs"][0]["response"]["message"]["selectionHash"] = "cmVsb2FkZWQ="
    stub_server.stub_file.write_text(json.dumps(changed))

    def default_hash():
        with mock_channel(stub_server, api, "stb.rules.v1.Rules") as channel:
            return api.rules_grpc.RulesStub(channel).Evaluate(api.rules_pb2.EvaluateRequest(), timeout=30).selection_hash

    deadline = time.monotonic() + 30
    while default_hash() != b"reloaded":
        assert time.monotonic() < deadline, "the changed file was not applied"
        time.sleep(0.2)
    # A file with one bad stub is refused whole: the stubs in force stay.
    broken = json.loads(json.dumps(changed))
    broken["stubs"][0]["response"]["message"]["selectionHash"] = "YnJva2Vu"
    broken["stubs"][3]["when"] = {"field": "text", "op": "REGEX", "value": "(unclosed"}
    stub_server.stub_file.write_text(json.dumps(broken))
    deadline = time.monotonic() + 30
    while "stub file refused" not in stub_server.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, stub_server.log_tail()
        time.sleep(0.1)
    log = stub_server.log_path.read_text(errors="replace")
    assert "stubs[3].when.value" in log and str(stub_server.stub_file) in log
    assert default_hash() == b"reloaded"
    stub_server.stub_file.write_text(json.dumps(FILE_STUBS))


def test_mocks_serve_health_and_reflection_and_stop(stub_server, api):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    port = mock_port(stub_server, api, "stb.rules.v1.Rules")
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as channel:
        assert "stb.rules.v1.Rules" in ProtoReflectionDescriptorDatabase(channel).get_services()
    stubs = admin(stub_server, api)
    started = stubs.StartMock(api.stubs_pb2.StartMockRequest(service="stb.catalog.v1.Catalog", port=0), timeout=30)
    assert started.port > 0
    stubs.StopMock(api.stubs_pb2.MockRef(service="stb.catalog.v1.Catalog"), timeout=30)
    assert "stb.catalog.v1.Catalog" not in [m.service for m in stubs.ListMocks(api.stubs_pb2.ListMocksRequest(), timeout=30).mocks]
    with pytest.raises(grpc.RpcError) as unknown:
        stubs.StartMock(api.stubs_pb2.StartMockRequest(service="stb.nothing.v1.X"), timeout=30)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_published_schema_accepts_the_stub_files_stubd_accepts():
    import jsonschema

    schema = json.loads((REPO / "services" / "stubs" / "stub.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(FILE_STUBS)
    validator.validate(json.loads((REPO / "services" / "stubs" / "demo-stubs.json").read_text()))
    bad = json.loads(json.dumps(FILE_STUBS))
    bad["stubs"][0]["when"] = {"field": "x", "op": "LIKE", "value": 1}
    assert not validator.is_valid(bad)
    faults = [{"kind": "RST_STREAM", "code": 7, "probability": 0.5}, {"kind": "GOAWAY"}, {"kind": "CONNECTION_RESET"},
              {"kind": "NEVER_ANSWER"}, {"kind": "SLOW_STREAM", "chunkBytes": 3, "gapMs": 20}]
    faulty = {"mocks": [{"service": "stb.rules.v1.Rules", "fault": {"kind": "GOAWAY", "code": 2}}],
              "stubs": [{"id": f"f{i}", "service": "stb.testing.v1.Echo", "method": "Get", "fault": fault,
                         "response": {"message": {}}} for i, fault in enumerate(faults)]}
    validator.validate(faulty)
    for wrong in [{"kind": "RST_STREAM", "code": 99}, {"kind": "STATUS"}, {"kind": "GOAWAY", "gap": 1}]:
        faulty["stubs"][0]["fault"] = wrong
        assert not validator.is_valid(faulty), wrong


def test_the_demo_stub_file_loads(tmp_path, api):
    # stubd refuses a file that does not fit the methods: start it on the demo file (on
    # ports of its own) and call the rules mock.
    demo = json.loads((REPO / "services" / "stubs" / "demo-stubs.json").read_text())
    for mock in demo["mocks"]:
        mock["port"] = 0
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(demo))
    with fresh_database(f"stubs_it_{os.getpid()}_demo", "stubs") as url:
        server = StubServer(stubd_binary(), tmp_path / "stubd.log", {
            "STUBS_PORT": str(_free_port()), "STUBS_DATABASE_URL": url,
            "STUBS_MIGRATIONS_DIR": str(REPO / "services" / "stubs" / "migrations"), "STUBS_FILE": str(path),
        }).start()
        try:
            listed = [s.id for s in admin(server, api).ListStubs(api.stubs_pb2.ListStubsRequest(), timeout=30).stubs]
            assert sorted(listed) == ["catalog-get-config", "rules-evaluate", "rules-evaluate-hdr"]
        finally:
            server.kill()


def test_stb_load_sees_a_mock_s_delay_and_injected_faults(stub_server, api):
    # A rules mock with a 20 ms delay and UNAVAILABLE for half the calls that name hdr,
    # set at run time through the admin API, then driven by stb-load.
    from test_load import load_binary

    stubs = admin(stub_server, api)
    stubs.PutStub(api.stubs_pb2.PutStubRequest(definition_json=json.dumps({
        "id": "evaluate-faulty", "service": "stb.rules.v1.Rules", "method": "Evaluate", "priority": 100,
        "when": {"field": "options[0].key", "op": "EQUALS", "value": "faulty"},
        "delay": {"fixedMs": 20},
        "fault": {"kind": "STATUS", "probability": 0.5, "status": {"code": "UNAVAILABLE", "message": "injected"}},
        "response": {"message": {"valid": True}},
    })), timeout=30)
    port = mock_port(stub_server, api, "stb.rules.v1.Rules")
    proc = subprocess.run(
        [str(load_binary()), "--target", f"127.0.0.1:{port}", "--method", "stb.rules.v1.Rules/Evaluate",
         "--data", '{"options": [{"key": "faulty"}]}', "--rate", "200", "--duration", "2s", "--json",
         "--threshold", "errors<1%"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    statuses = report["total"]["statuses"]
    assert statuses["OK"] + statuses["UNAVAILABLE"] == 400
    assert 120 <= statuses["UNAVAILABLE"] <= 280, statuses
    assert report["total"]["latencyFromActualMs"]["p50"] >= 20
    assert report["total"]["errorSamples"] == {"UNAVAILABLE: injected": statuses["UNAVAILABLE"]}
    assert stubs.Verify(api.stubs_pb2.VerifyRequest(stub_id="evaluate-faulty", count=400), timeout=30).count == 400
    stubs.DeleteStub(api.stubs_pb2.StubRef(id="evaluate-faulty"), timeout=30)


def test_stbctl_stubs_drives_the_admin_api(stub_server, api, tmp_path):
    stbctl = os.environ.get("STB_STBCTL_BIN") or str(REPO / ".build" / "debug" / "stbctl")

    def run(*args, expect=0):
        result = subprocess.run([stbctl, "stubs", *args, "--stubs-addr", stub_server.addr],
                                capture_output=True, text=True, timeout=60, cwd=REPO)
        assert result.returncode == expect, f"stbctl stubs {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout + result.stderr

    stub = tmp_path / "stub.json"
    stub.write_text(json.dumps({"id": "cli-echo", "service": "stb.testing.v1.Echo", "method": "Get", "priority": 60,
                                "when": {"field": "text", "op": "EQUALS", "value": "cli"},
                                "response": {"message": {"text": "from stbctl"}}}))
    assert run("put", str(stub)).strip() == "saved cli-echo"
    assert "stb.testing.v1.Echo/Get  priority 60  cli-echo  (api)" in run("list", "--service", "stb.testing.v1.Echo")
    with mock_channel(stub_server, api, "stb.testing.v1.Echo") as channel:
        assert api.echo_grpc.EchoStub(channel).Get(api.echo_pb2.EchoRequest(text="cli"), timeout=30).text == "from stbctl"
    assert run("verify", "cli-echo", "1").strip() == "cli-echo matched 1 calls"
    assert "matched 1 calls, not 2" in run("verify", "cli-echo", "2", expect=1)
    assert "-> cli-echo (status 0)" in run("journal", "--limit", "1")
    assert "stb.rules.v1.Rules" in run("mocks")
    assert run("delete", "cli-echo").strip() == "deleted cli-echo"


def test_stbctl_sets_faults_and_delays_of_mocks_and_stubs_at_run_time(stub_server, api):
    # `stbctl stubs fault` and `stbctl stubs delay` (SetFault, SetDelay): on the whole rules
    # mock, then on one admin-API stub; each as a stock grpcio client sees it, then cleared.
    stbctl = os.environ.get("STB_STBCTL_BIN") or str(REPO / ".build" / "debug" / "stbctl")

    def run(*args, expect=0):
        result = subprocess.run([stbctl, "stubs", *args, "--stubs-addr", stub_server.addr],
                                capture_output=True, text=True, timeout=60, cwd=REPO)
        assert result.returncode == expect, f"stbctl stubs {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout + result.stderr

    rules = "stb.rules.v1.Rules"
    port = mock_port(stub_server, api, rules)

    def evaluate(timeout=20.0):
        """The rules mock's answer to a fresh grpcio channel: (status, seconds)."""
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as channel:
            started = time.monotonic()
            try:
                api.rules_grpc.RulesStub(channel).Evaluate(api.rules_pb2.EvaluateRequest(), timeout=timeout)
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()
            return code, time.monotonic() - started

    assert evaluate()[0] == grpc.StatusCode.OK
    try:
        # A whole mock's fault, each kind as grpcio reports it.
        kinds = [
            (["--kind", "RST_STREAM"], grpc.StatusCode.INTERNAL),
            (["--kind", "RST_STREAM", "--code", "7"], grpc.StatusCode.UNAVAILABLE),
            (["--kind", "GOAWAY"], grpc.StatusCode.UNAVAILABLE),
            (["--kind", "CONNECTION_RESET"], grpc.StatusCode.UNAVAILABLE),
            (["--kind", "NEVER_ANSWER"], grpc.StatusCode.DEADLINE_EXCEEDED),
            (["--kind", "SLOW_STREAM", "--chunk-bytes", "1", "--gap-ms", "200"], grpc.StatusCode.DEADLINE_EXCEEDED),
        ]
        for options, expected in kinds:
            out = run("fault", rules, *options)
            assert out.startswith(f"mock {rules}: fault {{") and f'"kind":"{options[1]}"' in out, out
            # A 1 s deadline where it is to expire; otherwise the fault must end the call well
            # before its deadline (half of it), however slow the machine.
            deadline_expected = expected == grpc.StatusCode.DEADLINE_EXCEEDED
            code, seconds = evaluate(timeout=1.0 if deadline_expected else 20.0)
            assert code == expected, (options, code)
            if not deadline_expected:
                assert seconds < 10, (options, seconds)
        # With a probability: about that share of calls.
        run("fault", rules, "--kind", "RST_STREAM", "--probability", "0.5")
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as channel:
            failures = 0
            for _ in range(200):
                try:
                    api.rules_grpc.RulesStub(channel).Evaluate(api.rules_pb2.EvaluateRequest(), timeout=30)
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.INTERNAL
                    failures += 1
            assert 60 <= failures <= 140, failures
        assert run("fault", rules, "--clear").strip() == f"mock {rules}: no fault"
        assert evaluate()[0] == grpc.StatusCode.OK

        # A whole mock's delay, and cleared.
        # 4 s, so that a call without it (under half of it) is told apart on a slow machine.
        assert run("delay", rules, "--fixed-ms", "4000").strip() == f'mock {rules}: delay {{"fixedMs":4000}}'
        code, seconds = evaluate()
        assert code == grpc.StatusCode.OK and seconds >= 4, seconds
        assert evaluate(timeout=0.2)[0] == grpc.StatusCode.DEADLINE_EXCEEDED
        run("delay", rules, "--clear")
        code, seconds = evaluate()
        assert code == grpc.StatusCode.OK and seconds < 2, seconds
    finally:
        run("fault", rules, "--clear")
        run("delay", rules, "--clear")

    # One admin-API stub: its fault and delay are saved with it, and cleared.
    stubs = admin(stub_server, api)
    stubs.PutStub(api.stubs_pb2.PutStubRequest(definition_json=json.dumps({
        "id": "cli-fault", "service": "stb.testing.v1.Echo", "method": "Get", "priority": 200,
        "when": {"field": "text", "op": "EQUALS", "value": "cli-fault"}, "response": {"message": {"text": "fine"}},
    })), timeout=30)
    try:
        with mock_channel(stub_server, api, "stb.testing.v1.Echo") as channel:
            echo = api.echo_grpc.EchoStub(channel)
            out = run("fault", "cli-fault", "--kind", "STATUS", "--status", "UNAVAILABLE", "--message", "down for the test")
            assert out.startswith("stub cli-fault: fault {"), out
            with pytest.raises(grpc.RpcError) as failed:
                echo.Get(api.echo_pb2.EchoRequest(text="cli-fault"), timeout=30)
            assert (failed.value.code(), failed.value.details()) == (grpc.StatusCode.UNAVAILABLE, "down for the test")
            run("delay", "cli-fault", "--uniform-ms", "300,350")
            saved = json.loads(stubs.GetStub(api.stubs_pb2.StubRef(id="cli-fault"), timeout=30).definition_json)
            assert saved["delay"] == {"uniformMs": [300, 350]} and saved["fault"]["kind"] == "STATUS"
            run("fault", "cli-fault", "--clear")
            started = time.monotonic()
            assert echo.Get(api.echo_pb2.EchoRequest(text="cli-fault"), timeout=30).text == "fine"
            assert time.monotonic() - started >= 0.3
            assert run("delay", "cli-fault", "--clear").strip() == "stub cli-fault: no delay"
            saved = json.loads(stubs.GetStub(api.stubs_pb2.StubRef(id="cli-fault"), timeout=30).definition_json)
            assert "delay" not in saved and "fault" not in saved
    finally:
        stubs.DeleteStub(api.stubs_pb2.StubRef(id="cli-fault"), timeout=30)

    # Refused: a file's stub (it changes in its file), an unknown stub, a bad HTTP/2 code
    # (checked by stubd, naming the field), options that do not go together.
    assert "change it there" in run("fault", "echo-slow", "--kind", "GOAWAY", expect=1)
    assert "no stub" in run("delay", "no-such-stub", "--fixed-ms", "5", expect=1)
    assert "fault.code" in run("fault", rules, "--kind", "RST_STREAM", "--code", "99", expect=1)
    assert "--probability" in run("fault", rules, "--kind", "GOAWAY", "--probability", "2", expect=2)
    assert "--code" in run("fault", rules, "--kind", "NEVER_ANSWER", "--code", "2", expect=2)
    # Through the API: one of stub_id and mock, never both or neither; JSON only.
    for request in (api.stubs_pb2.SetFaultRequest(fault_json='{"kind": "GOAWAY"}'),
                    api.stubs_pb2.SetFaultRequest(stub_id="cli-fault", mock=rules, fault_json='{"kind": "GOAWAY"}'),
                    api.stubs_pb2.SetFaultRequest(mock=rules, fault_json="{kind: GOAWAY}")):
        with pytest.raises(grpc.RpcError) as refused:
            stubs.SetFault(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
    with pytest.raises(grpc.RpcError) as unknown:
        stubs.SetDelay(api.stubs_pb2.SetDelayRequest(mock="stb.nothing.v1.X", delay_json='{"fixedMs": 1}'), timeout=30)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert evaluate()[0] == grpc.StatusCode.OK


def test_scenarios_run_their_actions_in_order_and_store_the_result(stub_server, api):
    stubs = admin(stub_server, api)
    scenario = {
        "name": "catalog-fault", "description": "a catalog mock, a call, a fault, a load",
        "actions": [
            {"type": "START_MOCK", "service": "stb.catalog.v1.Catalog", "port": 0},
            {"type": "PUT_STUB", "stub": {"id": "scenario-config", "service": "stb.catalog.v1.Catalog", "method": "GetConfig",
                                          "response": {"message": {"revision": "7"}}}},
            {"type": "CALL", "target": "mock:stb.catalog.v1.Catalog", "method": "stb.catalog.v1.Catalog/GetConfig",
             "request": {}, "expect": {"status": "OK", "fields": {"revision": 7}}},
            {"type": "SET_FAULT", "stub": "scenario-config",
             "fault": {"kind": "STATUS", "status": {"code": "UNAVAILABLE", "message": "down"}}},
            {"type": "CALL", "target": "mock:stb.catalog.v1.Catalog", "method": "stb.catalog.v1.Catalog/GetConfig",
             "expect": {"status": "UNAVAILABLE"}},
            {"type": "WAIT", "ms": 10},
            {"type": "LOAD", "target": "mock:stb.catalog.v1.Catalog", "method": "stb.catalog.v1.Catalog/GetConfig",
             "rate": 100, "duration": "1s", "thresholds": ["errors<1%"]},
            {"type": "STOP_MOCK", "service": "stb.catalog.v1.Catalog"},
        ],
    }
    result = stubs.RunScenario(api.stubs_pb2.RunScenarioRequest(definition_json=json.dumps(scenario)), timeout=60)
    steps = json.loads(result.steps_json)
    # Every action ran; the load's error threshold failed (every call UNAVAILABLE): PARTIAL.
    assert result.status == "PARTIAL", result
    assert [s["type"] for s in steps] == [a["type"] for a in scenario["actions"]]
    assert [s["held"] for s in steps] == [True, True, True, True, True, True, False, True]
    assert steps[2]["detail"]["response"] == {"revision": "7"}
    assert steps[6]["detail"]["total"]["statuses"] == {"UNAVAILABLE": 100}
    assert steps[6]["detail"]["thresholds"][0]["passed"] is False
    # An action that cannot run fails the run there; the rest are skipped.
    failing = {"name": "stop-nothing", "actions": [{"type": "STOP_MOCK", "service": "stb.catalog.v1.Catalog"}, {"type": "WAIT", "ms": 1}]}
    failed = stubs.RunScenario(api.stubs_pb2.RunScenarioRequest(definition_json=json.dumps(failing)), timeout=30)
    assert failed.status == "FAILED" and "no mock of stb.catalog.v1.Catalog runs" in failed.error
    assert len(json.loads(failed.steps_json)) == 1
    stored = stubs.ListResults(api.stubs_pb2.ListResultsRequest(scenario="catalog-fault"), timeout=30).results
    assert stored[0].id == result.id and stored[0].status == "PARTIAL"
    assert json.loads(stored[0].steps_json) == steps
    # A scenario is checked whole before anything runs.
    bad = {"name": "bad", "actions": [{"type": "WAIT", "ms": 1},
                                      {"type": "PUT_STUB", "stub": {"id": "x", "service": "stb.testing.v1.Echo", "method": "Get",
                                                                    "response": {"message": {"nope": 1}}}}]}
    with pytest.raises(grpc.RpcError) as refused:
        stubs.RunScenario(api.stubs_pb2.RunScenarioRequest(definition_json=json.dumps(bad)), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "definition_json.actions[1].stub.response.message" in refused.value.details()


def test_stbctl_scenario_run_prints_the_report_and_its_exit_status_says_the_result(stub_server, tmp_path):
    stbctl = os.environ.get("STB_STBCTL_BIN") or str(REPO / ".build" / "debug" / "stbctl")

    def run(path):
        return subprocess.run([stbctl, "scenario", "run", str(path), "--stubs-addr", stub_server.addr],
                              capture_output=True, text=True, timeout=120, cwd=REPO)

    def scenario(name, expected_text):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"name": name, "actions": [
            {"type": "PUT_STUB", "stub": {"id": f"{name}-stub", "service": "stb.testing.v1.Echo", "method": "Get", "priority": 70,
                                          "when": {"field": "text", "op": "EQUALS", "value": name},
                                          "response": {"message": {"text": "scripted"}}}},
            {"type": "CALL", "target": "mock:stb.testing.v1.Echo", "method": "stb.testing.v1.Echo/Get",
             "request": {"text": name}, "expect": {"fields": {"text": expected_text}}},
            {"type": "LOAD", "target": "mock:stb.testing.v1.Echo", "method": "stb.testing.v1.Echo/Get",
             "data": {"text": name}, "rate": 50, "duration": "500ms", "thresholds": ["errors<1%"]},
        ]}))
        return path

    good = run(scenario("cli-good", "scripted"))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "1 CALL: ok" in good.stdout and "2 LOAD: ok" in good.stdout
    assert "cli-good: SUCCESS in" in good.stdout
    bad = run(scenario("cli-bad", "something else"))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "1 CALL: FAILED" in bad.stdout and "cli-bad: PARTIAL in" in bad.stdout
    listed = subprocess.run([stbctl, "scenario", "results", "--name", "cli-bad", "--stubs-addr", stub_server.addr],
                            capture_output=True, text=True, timeout=30, cwd=REPO)
    assert "cli-bad  PARTIAL" in listed.stdout, listed.stdout + listed.stderr


def test_client_streams_match_their_last_request_and_bidirectional_calls_answer_each(stub_server, api):
    stubs = admin(stub_server, api)
    for definition in [
        {"id": "collect-done", "service": "stb.testing.v1.Echo", "method": "Collect",
         "when": {"field": "text", "op": "EQUALS", "value": "done"}, "response": {"message": {"text": "collected"}}},
        {"id": "update-each", "service": "stb.testing.v1.Echo", "method": "Update",
         "when": {"field": "text", "op": "REGEX", "value": "q[0-9]"}, "response": {"messages": [{"message": {"text": "answer"}}]}},
    ]:
        stubs.PutStub(api.stubs_pb2.PutStubRequest(definition_json=json.dumps(definition)), timeout=30)
    with mock_channel(stub_server, api, "stb.testing.v1.Echo") as channel:
        echo = api.echo_grpc.EchoStub(channel)
        requests = [api.echo_pb2.EchoRequest(text=t) for t in ("a", "b", "done")]
        assert echo.Collect(iter(requests), timeout=30).text == "collected"
        replies = list(echo.Update(iter([api.echo_pb2.EchoRequest(text=f"q{i}") for i in range(3)]), timeout=30))
        assert [r.text for r in replies] == ["answer"] * 3
    assert stubs.Verify(api.stubs_pb2.VerifyRequest(stub_id="update-each", count=3), timeout=30).count == 3
    for stub_id in ("collect-done", "update-each"):
        stubs.DeleteStub(api.stubs_pb2.StubRef(id=stub_id), timeout=30)


def test_transport_faults_as_grpcio_sees_them(stub_server, api):
    # Each transport fault on a route of the echo mock, as a stock grpcio client reports it.
    stubs = admin(stub_server, api)
    faults = {
        "rst-internal": ({"kind": "RST_STREAM", "code": 2}, grpc.StatusCode.INTERNAL),
        "rst-refused": ({"kind": "RST_STREAM", "code": 7}, grpc.StatusCode.UNAVAILABLE),
        "goaway": ({"kind": "GOAWAY", "code": 2}, grpc.StatusCode.UNAVAILABLE),
        "reset": ({"kind": "CONNECTION_RESET"}, grpc.StatusCode.UNAVAILABLE),
        "never": ({"kind": "NEVER_ANSWER"}, grpc.StatusCode.DEADLINE_EXCEEDED),
        "dribble": ({"kind": "SLOW_STREAM", "chunkBytes": 2, "gapMs": 150}, grpc.StatusCode.DEADLINE_EXCEEDED),
    }
    for name, (fault, _) in faults.items():
        stubs.PutStub(api.stubs_pb2.PutStubRequest(definition_json=json.dumps({
            "id": f"fault-{name}", "service": "stb.testing.v1.Echo", "method": "Get", "priority": 200,
            "when": {"field": "text", "op": "EQUALS", "value": name}, "fault": fault,
            "response": {"message": {"text": "the whole answer"}},
        })), timeout=30)
    port = mock_port(stub_server, api, "stb.testing.v1.Echo")
    for name, (_, expected) in faults.items():
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as channel:
            echo = api.echo_grpc.EchoStub(channel)
            # As in the stbctl fault test: a 1 s deadline only where it is to expire.
            deadline_expected = expected == grpc.StatusCode.DEADLINE_EXCEEDED
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as failed:
                echo.Get(api.echo_pb2.EchoRequest(text=name), timeout=1.0 if deadline_expected else 20.0)
            assert failed.value.code() == expected, (name, failed.value.code(), failed.value.details())
            if not deadline_expected:
                assert time.monotonic() - started < 10, name
        # The mock serves on after the fault (on a new connection: grpcio may still try the
        # one it was cut from).
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as channel:
            reply = api.echo_grpc.EchoStub(channel).Get(api.echo_pb2.EchoRequest(text="seq"), timeout=30)
            assert reply.text in ("first", "second")
    # A dribbled answer that has the time arrives whole, a few bytes at a time.
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as channel:
        started = time.monotonic()
        reply = api.echo_grpc.EchoStub(channel).Get(api.echo_pb2.EchoRequest(text="dribble"), timeout=30)
        assert reply.text == "the whole answer"
        # 5 framing bytes and 18 of message, 2 at a time, 150 ms apart: at least 1.5 s.
        assert time.monotonic() - started >= 1.5
    # A fault with a probability strikes about that share of calls.
    stubs.PutStub(api.stubs_pb2.PutStubRequest(definition_json=json.dumps({
        "id": "fault-rst-half", "service": "stb.testing.v1.Echo", "method": "Get", "priority": 200,
        "when": {"field": "text", "op": "EQUALS", "value": "half"},
        "fault": {"kind": "RST_STREAM", "code": 2, "probability": 0.5},
        "response": {"message": {"text": "ok"}},
    })), timeout=30)
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as channel:
        echo = api.echo_grpc.EchoStub(channel)
        failures = 0
        for _ in range(200):
            try:
                echo.Get(api.echo_pb2.EchoRequest(text="half"), timeout=30)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.INTERNAL
                failures += 1
        assert 60 <= failures <= 140, failures
    for name in [*faults, "rst-half"]:
        stubs.DeleteStub(api.stubs_pb2.StubRef(id=f"fault-{name}"), timeout=30)


def test_a_fault_of_the_whole_mock_set_by_a_scenario(stub_server, api):
    # SET_FAULT with `mock` strikes every call the mock's stubs answer (here GOAWAY), until
    # a SET_FAULT with null removes it.
    stubs = admin(stub_server, api)
    scenario = {"name": "mock-fault", "actions": [
        {"type": "SET_FAULT", "mock": "stb.rules.v1.Rules", "fault": {"kind": "GOAWAY"}},
        {"type": "CALL", "target": "mock:stb.rules.v1.Rules", "method": "stb.rules.v1.Rules/Evaluate",
         "expect": {"status": "UNAVAILABLE"}},
    ]}
    result = stubs.RunScenario(api.stubs_pb2.RunScenarioRequest(definition_json=json.dumps(scenario)), timeout=60)
    assert result.status == "SUCCESS", result
    with mock_channel(stub_server, api, "stb.rules.v1.Rules") as channel:
        with pytest.raises(grpc.RpcError) as failed:
            api.rules_grpc.RulesStub(channel).Evaluate(api.rules_pb2.EvaluateRequest(), timeout=30)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    cleared = {"name": "mock-fault-cleared", "actions": [
        {"type": "SET_FAULT", "mock": "stb.rules.v1.Rules", "fault": None},
        {"type": "CALL", "target": "mock:stb.rules.v1.Rules", "method": "stb.rules.v1.Rules/Evaluate",
         "expect": {"status": "OK"}},
    ]}
    assert stubs.RunScenario(api.stubs_pb2.RunScenarioRequest(definition_json=json.dumps(cleared)), timeout=60).status == "SUCCESS"
    with pytest.raises(grpc.RpcError) as refused:
        stubs.RunScenario(api.stubs_pb2.RunScenarioRequest(definition_json=json.dumps(
            {"name": "bad-fault", "actions": [{"type": "SET_FAULT", "mock": "stb.rules.v1.Rules", "fault": {"kind": "RST_STREAM", "code": 99}}]})), timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "actions[0].fault.code" in refused.value.details(), refused.value.details()


def test_yaml_stub_files_load_like_json_and_what_the_subset_lacks_is_refused_with_file_and_line(tmp_path, api):
    import jsonschema
    import yaml

    demo_json = json.loads((REPO / "services" / "stubs" / "demo-stubs.json").read_text())
    demo_yaml = yaml.safe_load((REPO / "services" / "stubs" / "demo-stubs.yaml").read_text())
    demo_json.pop("$schema")
    assert demo_yaml == demo_json, "demo-stubs.yaml and demo-stubs.json differ"
    jsonschema.Draft202012Validator(json.loads((REPO / "services" / "stubs" / "stub.schema.json").read_text())).validate(demo_yaml)
    text = (REPO / "services" / "stubs" / "demo-stubs.yaml").read_text().replace("port: 50062", "port: 0").replace("port: 50061", "port: 0")
    path = tmp_path / "stubs.yaml"
    path.write_text(text)
    with fresh_database(f"stubs_it_{os.getpid()}_yaml", "stubs") as url:
        server = StubServer(stubd_binary(), tmp_path / "stubd.log", {
            "STUBS_PORT": str(_free_port()), "STUBS_DATABASE_URL": url,
            "STUBS_MIGRATIONS_DIR": str(REPO / "services" / "stubs" / "migrations"), "STUBS_FILE": str(path),
        }).start()
        try:
            listed = [s.id for s in admin(server, api).ListStubs(api.stubs_pb2.ListStubsRequest(), timeout=30).stubs]
            assert sorted(listed) == ["catalog-get-config", "rules-evaluate", "rules-evaluate-hdr"]
            with mock_channel(server, api, "stb.rules.v1.Rules") as channel:
                reply = api.rules_grpc.RulesStub(channel).Evaluate(api.rules_pb2.EvaluateRequest(options=[choice(api, "hdr")]), timeout=30)
                assert not reply.valid and reply.violations[0].rule_key == "hdr-needs-4k"
            # Plain scalars take the YAML 1.2 core types: `NO` is a string (it would be
            # false in YAML 1.1), `0x1F` an integer.
            typed = text.replace("value: hdr", "value: NO").replace("priority: 10", "priority: 0x1F")
            path.write_text(typed)
            time.sleep(1.2)
            hdr = next(s for s in admin(server, api).ListStubs(api.stubs_pb2.ListStubsRequest(), timeout=30).stubs if s.id == "rules-evaluate-hdr")
            assert hdr.priority == 31 and json.loads(hdr.definition_json)["when"]["value"] == "NO"
            # Each thing the subset does not support is refused naming the file and line;
            # the stubs in force stay.
            lines = text.splitlines()
            at = next(i for i, line in enumerate(lines) if line.strip() == "method: Evaluate") + 1
            cases = [
                ("anchors", lines[:at - 1] + ["  method: &m Evaluate"] + lines[at:], at),
                ("tags", lines[:at - 1] + ["  method: !!str Evaluate"] + lines[at:], at),
                ("given twice", lines[:at] + ["  method: Evaluate"] + lines[at:], at + 1),
                ("merge keys", lines[:at] + ["  <<: {priority: 1}"] + lines[at:], at + 1),
                ("one document", lines + ["---", "stubs: []"], len(lines) + 1),
                ("not YAML", lines[:at] + ["  when: [unclosed"] + lines[at:], None),
                ("has no JSON form", lines[:at] + ["  priority: .nan"] + lines[at:], at + 1),
            ]
            for reason, variant, line in cases:
                before = server.log_path.read_text(errors="replace").count("stub file refused")
                path.write_text("\n".join(variant) + "\n")
                deadline = time.monotonic() + 30
                while server.log_path.read_text(errors="replace").count("stub file refused") == before:
                    assert time.monotonic() < deadline, (reason, server.log_tail())
                    time.sleep(0.1)
                refusal = [l for l in server.log_path.read_text(errors="replace").splitlines() if "stub file refused" in l][-1]
                assert reason in refusal, (reason, refusal)
                assert (f"{path}:{line}" if line else str(path)) in refusal, (reason, line, refusal)
            listed = [s.id for s in admin(server, api).ListStubs(api.stubs_pb2.ListStubsRequest(), timeout=30).stubs]
            assert sorted(listed) == ["catalog-get-config", "rules-evaluate", "rules-evaluate-hdr"]
        finally:
            server.kill()
