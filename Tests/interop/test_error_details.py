"""Rich error details: what a stock client reads from `grpc-status-details-bin`.

`grpcio-status` (`rpc_status.from_call`) decodes the `google.rpc.Status` that catalogd
and rulesd send with a refused call, and the googleapis messages of
`googleapis-common-protos` unpack its details: a `BadRequest` with one field violation per
problem, a `PreconditionFailure` for a refused transition, an `ErrorInfo` in the `stb`
domain. The first test checks that `Protos/google/rpc/` matches those published
definitions field by field.

Fixtures (conftest.py): `catalog_server` (a catalogd on this module's own catalog
database, which it seeds with the demo document), `rules_server` (a rulesd following it),
`stubs`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import grpc
import pytest

import auth_tokens
from google.protobuf import descriptor_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from conftest import REPO, own_catalog_database

ACTOR = "pytest-details"
# The verified caller is the token's; stb-actor decides nothing.
METADATA = (("stb-actor", ACTOR),) + tuple(auth_tokens.metadata(auth_tokens.mint("admin", ACTOR)))
TIMEOUT = 30
DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"

needs_services = pytest.mark.skipif(
    not (os.environ.get("STB_CATALOGD_BIN") and os.environ.get("STB_RULESD_BIN")),
    reason="STB_CATALOGD_BIN and STB_RULESD_BIN must be set: these tests need catalogd and rulesd",
)


@pytest.fixture(scope="module")
def catalog_database():
    with own_catalog_database("details") as url:
        yield url


@pytest.fixture(scope="module")
def cpb(stubs):
    return stubs.catalog_pb2


@pytest.fixture(scope="module")
def rpb(stubs):
    return stubs.rules_pb2


@pytest.fixture(scope="module")
def catalog(catalog_server, stubs, cpb):
    with catalog_server.channel() as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        stub = stubs.catalog_grpc.CatalogStub(channel)
        stub.ImportSeed(cpb.ImportSeedRequest(document_json=DEMO_SEED.read_text(), file_name="demo.json"),
                        metadata=METADATA, timeout=TIMEOUT)
        yield stub


@pytest.fixture(scope="module")
def rules(rules_server, stubs, catalog):
    """A Rules stub once rulesd's catalog copy has the demo's state machines."""
    rpb = stubs.rules_pb2
    with rules_server.channel() as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        stub = stubs.rules_grpc.RulesStub(channel)
        deadline = time.monotonic() + 30
        while True:
            try:
                stub.AvailableEvents(rpb.AvailableEventsRequest(module_key="video", state="idle"),
                                     metadata=METADATA, timeout=TIMEOUT)
                break
            except grpc.RpcError as error:
                assert time.monotonic() < deadline, f"rulesd never saw the demo catalog: {error.details()}"
                time.sleep(0.1)
        yield stub


def refused(call, *args, **kwargs) -> grpc.RpcError:
    """The RpcError `call` raises; fails the test when it succeeds."""
    with pytest.raises(grpc.RpcError) as error:
        call(*args, metadata=METADATA, timeout=TIMEOUT, **kwargs)
    return error.value


def rich_status(error: grpc.RpcError) -> status_pb2.Status:
    """The google.rpc.Status a stock client decodes (it checks code and message agree)."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no grpc-status-details-bin with {error.code()}: {error.details()}"
    return status


def details(status: status_pb2.Status, message_type):
    """Every detail of `message_type`, unpacked."""
    found = []
    for any_detail in status.details:
        if any_detail.Is(message_type.DESCRIPTOR):
            message = message_type()
            any_detail.Unpack(message)
            found.append(message)
    return found


def error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    infos = details(status, error_details_pb2.ErrorInfo)
    assert len(infos) == 1, status
    assert infos[0].domain == "stb"
    return infos[0]


# -- the messages --------------------------------------------------------------------------


def _fields(message: descriptor_pb2.DescriptorProto, prefix: str = "") -> dict:
    out = {}
    for field in message.field:
        out[f"{prefix}{message.name}.{field.name}"] = (field.number, field.label, field.type, field.type_name)
    for nested in message.nested_type:
        out.update(_fields(nested, f"{prefix}{message.name}."))
    return out


def test_our_protos_match_the_googleapis_definitions(tmp_path):
    out = tmp_path / "rpc.pb"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'Protos'}", f"--descriptor_set_out={out}",
         "google/rpc/status.proto", "google/rpc/error_details.proto"],
        check=True)
    ours = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    for module in (status_pb2, error_details_pb2):
        published = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(published)
        mine = next(f for f in ours.file if f.name == published.name)
        assert mine.package == published.package == "google.rpc"
        expected, actual = {}, {}
        for message in published.message_type:
            expected.update(_fields(message))
        for message in mine.message_type:
            actual.update(_fields(message))
        assert actual == expected, published.name


# -- catalogd --------------------------------------------------------------------------------


@needs_services
def test_create_option_with_a_bad_default_names_the_field(catalog, cpb):
    error = refused(catalog.CreateOption, cpb.CreateOptionRequest(option=cpb.Option(
        module_key="video", group_key="output", key=f"it_bad_{uuid.uuid4().hex[:8]}",
        name="Bad", type=cpb.OPTION_TYPE_INTEGER, default_value="abc")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rich_status(error)
    assert status.code == code_pb2.INVALID_ARGUMENT
    (bad_request,) = details(status, error_details_pb2.BadRequest)
    violations = {v.field: v.description for v in bad_request.field_violations}
    assert violations == {"option.default_value": '"abc" is not an integer'}, violations
    info = error_info(status)
    assert info.reason == "INVALID_ARGUMENT"
    assert info.metadata["problems"] == "1"


@needs_services
def test_bad_seed_document_gives_a_violation_per_problem(catalog, cpb):
    document = json.dumps({"modules": [{
        "key": "Bad Key", "name": "M",
        "groups": [{"key": "g", "name": "G", "options": [
            {"key": "o1", "name": "O", "type": "integer", "default": "x"},
            {"key": "o2", "name": "O", "type": "colour", "default": "red"},
        ]}],
    }]})
    error = refused(catalog.ImportSeed, cpb.ImportSeedRequest(document_json=document, dry_run=True))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("seed document is invalid: ")
    status = rich_status(error)
    (bad_request,) = details(status, error_details_pb2.BadRequest)
    fields = [v.field for v in bad_request.field_violations]
    assert fields == [
        "modules[0].key",
        "modules[0].groups[0].options[0].default",
        "modules[0].groups[0].options[1].type",
    ], [f"{v.field}: {v.description}" for v in bad_request.field_violations]
    # Each violation is its problem in the message, path and description.
    for violation in bad_request.field_violations:
        assert f"{violation.field}: {violation.description}" in error.details()
    assert error_info(status).metadata["problems"] == str(len(fields))


@needs_services
def test_deleting_a_state_in_use_is_a_precondition_failure(catalog, cpb):
    error = refused(catalog.DeleteState, cpb.StateRef(module_key="video", name="idle"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = rich_status(error)
    (failure,) = details(status, error_details_pb2.PreconditionFailure)
    assert [(v.type, v.subject) for v in failure.violations] == [("STATE_IN_USE", "video/idle")]
    assert error_info(status).reason == "FAILED_PRECONDITION"


@needs_services
def test_not_found_carries_an_error_info(catalog, cpb):
    error = refused(catalog.GetOption, cpb.OptionRef(key=f"no_such_{uuid.uuid4().hex[:8]}"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(rich_status(error))
    assert (info.reason, info.metadata["service"]) == ("NOT_FOUND", "catalog")


# -- rulesd -----------------------------------------------------------------------------------


@needs_services
def test_fire_refused_by_its_condition_is_a_precondition_failure(rules, rpb):
    context = json.dumps({"hdmi_version": "2.0", "hdcp_version": "2.2"})
    error = refused(rules.Fire, rpb.FireRequest(module_key="video", state="idle", event="ENABLE_4K", context_json=context))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = rich_status(error)
    (failure,) = details(status, error_details_pb2.PreconditionFailure)
    (violation,) = failure.violations
    assert (violation.type, violation.subject) == ("CONDITION_FAILED", "video/idle/ENABLE_4K")
    assert 'hdmi_version [="2.0"]' in violation.description, violation.description
    info = error_info(status)
    assert info.reason == "CONDITION_FAILED"
    assert dict(info.metadata) == {"module": "video", "state": "idle", "event": "ENABLE_4K"}
    assert not details(status, error_details_pb2.RetryInfo)


@needs_services
def test_fire_without_a_transition_is_a_precondition_failure(rules, rpb):
    error = refused(rules.Fire, rpb.FireRequest(module_key="video", state="idle", event="NO_SUCH_EVENT"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    (failure,) = details(rich_status(error), error_details_pb2.PreconditionFailure)
    assert [v.type for v in failure.violations] == ["NO_TRANSITION"]


@needs_services
def test_evaluate_with_an_unknown_option_names_the_choice(rules, rpb):
    error = refused(rules.Evaluate, rpb.EvaluateRequest(options=[rpb.OptionChoice(key="hdr_enabled", included=True),
                                                                 rpb.OptionChoice(key="nope", included=True)]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    (bad_request,) = details(rich_status(error), error_details_pb2.BadRequest)
    assert [v.field for v in bad_request.field_violations] == ["options[1].key"], bad_request
