"""The role matrix: every RPC of catalog and rules, against the real catalogd and rulesd,
with a stock grpcio client, for every kind of caller.

The RPCs are enumerated from the protos' descriptors, so a new RPC cannot be left out; the
expected least role of each is the platform's rule, written here independently of the
services' table: reads (Get*, List*, GetConfig, Watch, Evaluate, CheckRules, Impact,
AvailableEvents) are for viewers and service accounts, Fire for operators, every other
change for engineers. A call either fails authentication (UNAUTHENTICATED), is refused
(PERMISSION_DENIED), or reaches its handler: an empty request then gets the handler's own
answer (OK, INVALID_ARGUMENT, NOT_FOUND, …), which counts as allowed.
"""

from __future__ import annotations

import os
import subprocess

import grpc
import pytest
from google.protobuf import descriptor_pb2

import auth_tokens
from conftest import own_catalog_database

pytestmark = pytest.mark.skipif(
    not (os.environ.get("STB_CATALOGD_BIN") and os.environ.get("STB_RULESD_BIN")),
    reason="STB_CATALOGD_BIN and STB_RULESD_BIN must be set: these tests need catalogd and rulesd",
)

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
ALLOWED = "allowed"
READS = {"GetConfig", "Watch", "Evaluate", "CheckRules", "Impact", "AvailableEvents"}
USER_ORDER = ["viewer", "operator", "engineer", "admin"]

# Callers whose token must not be accepted, by what is wrong with it.
BAD_TOKENS = {
    "no token": lambda: None,
    "expired": lambda: auth_tokens.mint("admin", lifetime=-600),
    "bad signature": lambda: auth_tokens.tampered("admin"),
    "alg none": lambda: auth_tokens.unsigned("admin"),
    "wrong audience": lambda: auth_tokens.mint("admin", audience="not-stb"),
    "wrong issuer": lambda: auth_tokens.mint("admin", issuer="somebody-else"),
    "unknown key (same kid)": lambda: auth_tokens.mint("admin", key=auth_tokens.STRANGER),
    "unknown key (other kid)": lambda: auth_tokens.mint("admin", key=auth_tokens.SigningKey("not-ours")),
    "garbage": lambda: "not.a.jwt",
}


@pytest.fixture(scope="module")
def catalog_database():
    with own_catalog_database("matrix") as url:
        yield url


def least_role(method: str) -> tuple[str, bool]:
    """The platform's least role for `method`, and whether service accounts may call it."""
    if method.startswith(("Get", "List")) or method in READS:
        return "viewer", True
    if method == "Fire":
        return "operator", False
    return "engineer", False


def expected(method: str, role: str) -> object:
    least, services = least_role(method)
    if role == "service":
        return ALLOWED if services else DENIED
    return ALLOWED if USER_ORDER.index(role) >= USER_ORDER.index(least) else DENIED


def methods(module, service: str) -> list[tuple[str, str, bool, bool]]:
    """(path, name, client streaming, server streaming) of every RPC of `service`."""
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    [svc] = [s for s in proto.service if s.name == service]
    return [(f"/{proto.package}.{service}/{m.name}", m.name, m.client_streaming, m.server_streaming) for m in svc.method]


def call(channel: grpc.Channel, path: str, client_streaming: bool, server_streaming: bool, token: str | None):
    """The outcome of calling `path` with an empty request: ALLOWED, or the status code
    of a refusal."""
    metadata = auth_tokens.metadata(token)
    identity = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        if server_streaming:
            # An allowed stream may stay open until its deadline: 5 s, enough for a refusal to
            # arrive before it on a loaded machine without waiting long on every allowed one.
            stream = (channel.stream_stream(path, **identity)(iter([b""]), timeout=5, metadata=metadata) if client_streaming
                      else channel.unary_stream(path, **identity)(b"", timeout=5, metadata=metadata))
            for _ in stream:
                break
            stream.cancel()
        elif client_streaming:
            channel.stream_unary(path, **identity)(iter([b""]), timeout=30, metadata=metadata)
        else:
            channel.unary_unary(path, **identity)(b"", timeout=30, metadata=metadata)
    except grpc.RpcError as error:
        if error.code() in (UNAUTHENTICATED, DENIED):
            return error.code()
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise AssertionError(f"{path} is not served") from error
    return ALLOWED


@pytest.fixture(scope="module")
def services(stubs, catalog_server, rules_server):
    """(name, channel without a token, RPCs) for catalog and rules."""
    catalog = catalog_server.raw_channel()
    rules = rules_server.raw_channel()
    yield [
        ("catalog", catalog, methods(stubs.catalog_pb2, "Catalog")),
        ("rules", rules, methods(stubs.rules_pb2, "Rules")),
    ]
    catalog.close()
    rules.close()


def test_the_matrix_covers_every_rpc(services):
    names = {name: [m[1] for m in rpcs] for name, _, rpcs in services}
    # The descriptors are the generated protos': every RPC is in the matrix below.
    assert "GetConfig" in names["catalog"] and "ImportSeed" in names["catalog"] and len(names["catalog"]) >= 28
    assert "Fire" in names["rules"] and "Evaluate" in names["rules"] and len(names["rules"]) >= 12


@pytest.mark.parametrize("caller", list(BAD_TOKENS))
def test_bad_tokens_are_unauthenticated_everywhere(services, caller):
    token = BAD_TOKENS[caller]()
    wrong = []
    for service, channel, rpcs in services:
        for path, _, client_streaming, server_streaming in rpcs:
            outcome = call(channel, path, client_streaming, server_streaming, token)
            if outcome != UNAUTHENTICATED:
                wrong.append(f"{path}: {outcome}")
    assert not wrong, f"{caller}: expected UNAUTHENTICATED from every RPC, got:\n" + "\n".join(wrong)


@pytest.mark.parametrize("role", USER_ORDER + ["service"])
def test_each_role_reaches_exactly_what_the_table_allows(services, role):
    token = auth_tokens.mint(role, f"matrix-{role}")
    wrong = []
    for service, channel, rpcs in services:
        for path, name, client_streaming, server_streaming in rpcs:
            outcome = call(channel, path, client_streaming, server_streaming, token)
            if outcome != expected(name, role):
                wrong.append(f"{path}: expected {expected(name, role)}, got {outcome}")
    assert not wrong, f"role {role}:\n" + "\n".join(wrong)


def test_refusals_say_why(services):
    _, channel, _ = services[0]
    get_config = channel.unary_unary("/stb.catalog.v1.Catalog/GetConfig", request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)
    expired = auth_tokens.mint("admin", lifetime=-600)
    with pytest.raises(grpc.RpcError) as info:
        get_config(b"", timeout=30, metadata=auth_tokens.metadata(expired))
    assert info.value.code() == UNAUTHENTICATED
    assert "expired" in info.value.details() and expired not in info.value.details()
    import_seed = channel.unary_unary("/stb.catalog.v1.Catalog/ImportSeed", request_serializer=lambda b: b,
                                      response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as info:
        import_seed(b"", timeout=30, metadata=auth_tokens.metadata(auth_tokens.mint("operator")))
    assert info.value.code() == DENIED and "engineer" in info.value.details()


def test_health_and_reflection_stay_open(services, stubs):
    for _, channel, _ in services:
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        assert check(b"", timeout=30) == b"\x08\x01"
        # ServerReflectionInfo with list_services: "" (field 7).
        reflect = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                        request_serializer=lambda b: b, response_deserializer=lambda b: b)
        replies = list(reflect(iter([b"\x3a\x00"]), timeout=30))
        assert replies and b"grpc.health.v1.Health" in replies[0]


def test_audit_rows_and_events_name_the_verified_user(services, stubs, catalog_server, catalog_database):
    _, channel, _ = services[0]
    pb = stubs.catalog_pb2
    stub = stubs.catalog_grpc.CatalogStub(channel)
    token = auth_tokens.mint("engineer", "erin")
    module = pb.Module(key="matrix_audit", name="Matrix audit", active=True)
    cursor = stub.GetConfig(pb.GetConfigRequest(), timeout=30, metadata=auth_tokens.metadata(token)).cursor
    # stb-actor claims someone else: it decides nothing.
    stub.CreateModule(pb.CreateModuleRequest(module=module), timeout=30,
                      metadata=auth_tokens.metadata(token) + [("stb-actor", "mallory")])
    # The change event says who, as the audit row does.
    events = stub.Watch(pb.WatchRequest(after=cursor), timeout=30, metadata=auth_tokens.metadata(token))
    event = next(events)
    events.cancel()
    assert (event.key, event.actor, event.actor_id) == ("matrix_audit", "erin", "user:erin")
    rows = subprocess.run(
        ["psql", catalog_database, "-X", "-At", "-F", " ", "-c",
         "SELECT actor, actor_id FROM audit_log WHERE entity = 'module' AND entity_key = 'matrix_audit'"],
        capture_output=True, text=True, timeout=30, check=True).stdout.split("\n")
    assert [row for row in rows if row] == ["erin user:erin"]
