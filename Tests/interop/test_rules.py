"""The rules service (rulesd) through a stock grpcio client with generated stubs.

Fixtures (conftest.py): `rules_server` (a rulesd per module on a fresh rules database,
reading this module's catalogd; ready once health is SERVING), `catalog_server` and
`stubs`. This module imports the demo seed, which test_catalog_grpcio expects to import
into an empty catalog itself, so it overrides `catalog_database` with a catalog of its own.

The tests run in file order and build on each other (seed imported, then rules imported,
then evaluated and analysed; a catalog option deleted; rulesd stopped last).
"""

from __future__ import annotations

import json
import os
import signal
import time

import grpc
import pytest

import auth_tokens

from conftest import HEALTH_SERVING, REPO, health_status, own_catalog_database

pytestmark = pytest.mark.skipif(
    not (os.environ.get("STB_CATALOGD_BIN") and os.environ.get("STB_RULESD_BIN")),
    reason="STB_CATALOGD_BIN and STB_RULESD_BIN must be set: these tests need catalogd and rulesd",
)

ACTOR = "pytest-rules"
# The verified caller is the token's; stb-actor decides nothing.
METADATA = (("stb-actor", ACTOR),) + tuple(auth_tokens.metadata(auth_tokens.mint("admin", ACTOR)))
TIMEOUT = 30
DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"
DEMO_RULE_KEYS = sorted(rule["key"] for rule in json.loads(DEMO_SEED.read_text())["rules"])


@pytest.fixture(scope="module")
def catalog_database():
    with own_catalog_database("rules") as url:
        yield url


@pytest.fixture(scope="module")
def cpb(stubs):
    return stubs.catalog_pb2


@pytest.fixture(scope="module")
def rpb(stubs):
    return stubs.rules_pb2


@pytest.fixture(scope="module")
def catalog(catalog_server, stubs):
    with catalog_server.channel() as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield stubs.catalog_grpc.CatalogStub(channel)


@pytest.fixture(scope="module")
def demo_seeded(catalog, cpb):
    """The demo seed in this module's catalog."""
    reply = catalog.ImportSeed(cpb.ImportSeedRequest(document_json=DEMO_SEED.read_text(), file_name="demo.json"),
                               metadata=METADATA, timeout=TIMEOUT)
    return reply


@pytest.fixture(scope="module")
def rules(rules_server, stubs, demo_seeded):
    """A Rules stub, once rulesd's copy of the catalog has caught up with the demo seed
    (rulesd was started on the empty catalog and follows its changes)."""
    with rules_server.channel() as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        stub = stubs.rules_grpc.RulesStub(channel)
        wait_for_catalog_revision(stub, stubs.rules_pb2, demo_seeded.revision)
        yield stub


def wait_for_catalog_revision(rules, rpb, revision: int, timeout: float = 30.0):
    """Polls CheckRules until rulesd reports catalog `revision` or later."""
    deadline = time.monotonic() + timeout
    while True:
        seen = rules.CheckRules(rpb.CheckRulesRequest(), metadata=METADATA, timeout=TIMEOUT).catalog_revision
        if seen >= revision:
            return
        assert time.monotonic() < deadline, (
            f"rulesd's copy of the catalog is at revision {seen}, not {revision}, after {timeout} s")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def demo_rules(rules, rpb):
    """The demo rules imported (test_import_rules does it; tests run alone import here)."""
    return rules.ImportRules(rpb.ImportRulesRequest(document_json=DEMO_SEED.read_text(), file_name="demo.json"),
                             metadata=METADATA, timeout=TIMEOUT)


def choice(rpb, key, included=True, value=None):
    message = rpb.OptionChoice(key=key, included=included)
    if value is not None:
        message.value_json = json.dumps(value)
    return message


def describe(reply) -> str:
    return "\n".join(
        f"{v.rule_key} ({v.severity}): {v.message} | {v.explanation} | "
        + ", ".join(f"{r.option_key}[{r.included}]={r.value_json}" for r in v.references)
        for v in reply.violations) or "(no violations)"


def describe_check(reply) -> str:
    return (f"cycles: {[list(c.chain) for c in reply.cycles]}\n"
            f"dead options: {[(d.option_key, d.reason) for d in reply.dead_options]}\n"
            f"unknown references: {[(u.rule_key, u.option_key) for u in reply.unknown_references]}\n"
            f"contradictions: {list(reply.contradictions)}")


# -- import ------------------------------------------------------------------------------


def test_import_rules_dry_run_apply_then_nothing(rules, rpb):
    request = dict(document_json=DEMO_SEED.read_text(), file_name="demo.json")

    dry = rules.ImportRules(rpb.ImportRulesRequest(dry_run=True, **request), metadata=METADATA, timeout=TIMEOUT)
    assert not dry.applied
    assert sorted(dry.created) == DEMO_RULE_KEYS
    assert list(dry.updated) == [] and list(dry.deleted) == []

    # Nothing was written.
    with pytest.raises(grpc.RpcError) as missing:
        rules.GetRule(rpb.RuleRef(key="video-bitrate-bound"), metadata=METADATA, timeout=TIMEOUT)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    applied = rules.ImportRules(rpb.ImportRulesRequest(**request), metadata=METADATA, timeout=TIMEOUT)
    assert applied.applied
    assert applied.revision > 0
    assert sorted(applied.created) == DEMO_RULE_KEYS

    rule = rules.GetRule(rpb.RuleRef(key="video-bitrate-bound"), metadata=METADATA, timeout=TIMEOUT)
    assert rule.subject == "max_video_bitrate_kbps"
    assert rule.type == rpb.RULE_TYPE_VALIDATION
    assert rule.severity == rpb.SEVERITY_ERROR
    assert rule.active
    assert json.loads(rule.payload_json) == {"logic": {"<=": [1000, {"var": "max_video_bitrate_kbps"}, 50000]}}

    repeat = rules.ImportRules(rpb.ImportRulesRequest(**request), metadata=METADATA, timeout=TIMEOUT)
    assert not repeat.applied
    assert list(repeat.created) == [] and list(repeat.updated) == [] and list(repeat.deleted) == []
    assert repeat.unchanged == len(DEMO_RULE_KEYS)


def test_list_rules_by_subject(rules, rpb, demo_rules):
    reply = rules.ListRules(rpb.ListRulesRequest(subject="static_ip"), metadata=METADATA, timeout=TIMEOUT)
    assert sorted(r.key for r in reply.rules) == ["dhcp-timeout-forbids-static", "static-ip-needs-addressing"]


# -- evaluation --------------------------------------------------------------------------


def test_evaluate_bitrate_out_of_bounds_is_invalid(rules, rpb, demo_rules):
    request = rpb.EvaluateRequest(options=[
        choice(rpb, "max_video_bitrate_kbps", value=60000),
        choice(rpb, "parental_pin_required", value=True),
    ])
    reply = rules.Evaluate(request, metadata=METADATA, timeout=TIMEOUT)
    assert not reply.valid, describe(reply)
    violation = next((v for v in reply.violations if v.rule_key == "video-bitrate-bound"), None)
    assert violation is not None, describe(reply)
    assert violation.severity == rpb.SEVERITY_ERROR
    assert violation.type == rpb.RULE_TYPE_VALIDATION
    assert violation.message.startswith("The maximum video bitrate")
    reference = next((r for r in violation.references if r.option_key == "max_video_bitrate_kbps"), None)
    assert reference is not None, describe(reply)
    assert reference.included
    assert json.loads(reference.value_json) == 60000


def test_evaluate_valid_selection(rules, rpb, demo_rules):
    # The demo catalog's defaults with the parental PIN turned on satisfy the demo rules.
    defaults = rules.Evaluate(rpb.EvaluateRequest(options=[choice(rpb, "parental_pin_required", value=True)]),
                              metadata=METADATA, timeout=TIMEOUT)
    assert defaults.valid, describe(defaults)
    request = rpb.EvaluateRequest(options=[
        choice(rpb, "parental_pin_required", value=True),
        choice(rpb, "max_video_bitrate_kbps", value=25000),
        choice(rpb, "playready_enabled", included=False),
    ])
    reply = rules.Evaluate(request, metadata=METADATA, timeout=TIMEOUT)
    assert reply.valid, describe(reply)
    assert not any(v.severity == rpb.SEVERITY_ERROR for v in reply.violations), describe(reply)
    assert reply.catalog_revision > 0
    # The rules revision the answer was computed at: the one ImportRules reported.
    assert reply.rules_revision > 0 and reply.rules_revision == demo_rules.revision
    assert defaults.rules_revision == demo_rules.revision


def test_evaluate_checks_values_against_the_catalog(rules, rpb, demo_rules):
    # Outside min/max/step and not an enum value: violations of the options' own constraints.
    request = rpb.EvaluateRequest(options=[
        choice(rpb, "max_video_bitrate_kbps", value=200001),
        choice(rpb, "resolution", value="8k"),
    ])
    reply = rules.Evaluate(request, metadata=METADATA, timeout=TIMEOUT)
    assert not reply.valid, describe(reply)
    found = {v.rule_key: v for v in reply.violations if v.constraint}
    assert set(found) == {"option:max_video_bitrate_kbps/max", "option:max_video_bitrate_kbps/step",
                          "option:resolution/values"}, describe(reply)
    bound = found["option:max_video_bitrate_kbps/max"]
    assert bound.severity == rpb.SEVERITY_ERROR and bound.constraint == "max"
    assert [(r.option_key, json.loads(r.value_json)) for r in bound.references] == [("max_video_bitrate_kbps", 200001)]

    # Unknown options and values of the wrong type are refused, naming the choice.
    for options, expected in [
        ([choice(rpb, "resolution"), choice(rpb, "nope")], 'options[1].key: unknown option "nope"'),
        ([choice(rpb, "max_video_bitrate_kbps", value="abc")], "options[0].value_json: must be an integer, not a string"),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            rules.Evaluate(rpb.EvaluateRequest(options=options), metadata=METADATA, timeout=TIMEOUT)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert expected in refused.value.details(), refused.value.details()


def test_evaluate_boolean_is_on_only_when_included_and_true(rules, rpb, demo_rules):
    # A boolean counts as on when it is included and true: the purchase PIN (a boolean, on)
    # requires the parental PIN, which included at false does not satisfy ...
    off = rules.Evaluate(rpb.EvaluateRequest(options=[
        choice(rpb, "purchase_pin", value=True),
        choice(rpb, "parental_pin_required", value=False),
    ]), metadata=METADATA, timeout=TIMEOUT)
    violation = next((v for v in off.violations if v.rule_key == "purchase-pin-needs-parental-pin"), None)
    assert violation is not None, describe(off)
    assert violation.explanation == "purchase_pin requires parental_pin_required [=n]", describe(off)
    pin = next(r for r in violation.references if r.option_key == "parental_pin_required")
    assert pin.included and json.loads(pin.value_json) is False, describe(off)
    assert "parental_pin_required" in off.closure
    # ... and the purchase PIN included at false does not trigger the rule.
    both_off = rules.Evaluate(rpb.EvaluateRequest(options=[
        choice(rpb, "purchase_pin", value=False),
        choice(rpb, "parental_pin_required", value=False),
    ]), metadata=METADATA, timeout=TIMEOUT)
    assert "purchase-pin-needs-parental-pin" not in [v.rule_key for v in both_off.violations], describe(both_off)
    # An included boolean at false does not count in a choice: one DRM system on.
    drm = rules.Evaluate(rpb.EvaluateRequest(options=[
        choice(rpb, "widevine_enabled", value=True),
        choice(rpb, "playready_enabled", value=False),
    ]), metadata=METADATA, timeout=TIMEOUT)
    assert "drm-system" not in [v.rule_key for v in drm.violations], describe(drm)
    both = rules.Evaluate(rpb.EvaluateRequest(options=[
        choice(rpb, "widevine_enabled", value=True),
        choice(rpb, "playready_enabled", value=True),
    ]), metadata=METADATA, timeout=TIMEOUT)
    assert "drm-system" in [v.rule_key for v in both.violations], describe(both)


def test_demo_defaults_are_valid(rules, rpb, demo_rules):
    # A new project starts from the catalog defaults: the demo's must satisfy its rules.
    defaults = rules.Evaluate(rpb.EvaluateRequest(), metadata=METADATA, timeout=TIMEOUT)
    errors = [v.rule_key for v in defaults.violations if v.severity != rpb.SEVERITY_WARNING]
    assert defaults.valid and not errors, errors


def test_evaluate_requires_names_the_missing_option(rules, rpb, demo_rules):
    request = rpb.EvaluateRequest(options=[
        choice(rpb, "parental_pin_required", value=True),
        choice(rpb, "proxy_enabled", value=True),
        choice(rpb, "proxy_host", included=False),
    ])
    reply = rules.Evaluate(request, metadata=METADATA, timeout=TIMEOUT)
    assert not reply.valid, describe(reply)
    violation = next((v for v in reply.violations if v.rule_key == "proxy-needs-host-and-port"), None)
    assert violation is not None, describe(reply)
    host = next((r for r in violation.references if r.option_key == "proxy_host"), None)
    assert host is not None and not host.included and host.value_json == "", describe(reply)
    assert "proxy_host" in violation.explanation


# -- analysis ----------------------------------------------------------------------------


def test_check_demo_rules_has_no_unknown_references_and_no_cycles(rules, rpb, demo_rules):
    reply = rules.CheckRules(rpb.CheckRulesRequest(), metadata=METADATA, timeout=TIMEOUT)
    assert list(reply.unknown_references) == [], describe_check(reply)
    assert list(reply.cycles) == [], describe_check(reply)
    assert reply.catalog_revision > 0


def test_catalog_change_is_reflected_without_restart(rules, rpb, catalog, cpb, demo_rules):
    # tamper_detection is referenced by debug-port-unlocked-forbids-drm (forbidden).
    before = rules.CheckRules(rpb.CheckRulesRequest(), metadata=METADATA, timeout=TIMEOUT)
    assert "tamper_detection" not in {u.option_key for u in before.unknown_references}, describe_check(before)

    catalog.DeleteOption(cpb.OptionRef(key="tamper_detection"), metadata=METADATA, timeout=TIMEOUT)

    deadline = time.monotonic() + 30
    while True:
        reply = rules.CheckRules(rpb.CheckRulesRequest(), metadata=METADATA, timeout=TIMEOUT)
        found = [(u.rule_key, u.option_key) for u in reply.unknown_references]
        if ("debug-port-unlocked-forbids-drm", "tamper_detection") in found:
            break
        assert time.monotonic() < deadline, (
            f"rulesd did not notice the deleted option within 30 s\n{describe_check(reply)}")
        time.sleep(0.1)
    assert reply.catalog_revision > before.catalog_revision


# -- state machines ----------------------------------------------------------------------


def test_fire_enable_4k_with_hdmi_2_1(rules, rpb, demo_rules):
    context = json.dumps({"hdmi_version": "2.1", "hdcp_version": "2.2"})
    reply = rules.Fire(rpb.FireRequest(module_key="video", state="idle", event="ENABLE_4K", context_json=context),
                       metadata=METADATA, timeout=TIMEOUT)
    assert reply.next_state == "4k_enabled"


def test_fire_enable_4k_with_hdmi_2_0_is_refused(rules, rpb, demo_rules):
    context = json.dumps({"hdmi_version": "2.0", "hdcp_version": "2.2"})
    with pytest.raises(grpc.RpcError) as refused:
        rules.Fire(rpb.FireRequest(module_key="video", state="idle", event="ENABLE_4K", context_json=context),
                   metadata=METADATA, timeout=TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.value.details()
    assert "2.0" in refused.value.details(), refused.value.details()


def test_available_events_from_idle(rules, rpb, demo_rules):
    context = json.dumps({"hdmi_version": "2.1", "hdcp_version": "2.2"})
    reply = rules.AvailableEvents(
        rpb.AvailableEventsRequest(module_key="video", state="idle", context_json=context),
        metadata=METADATA, timeout=TIMEOUT)
    assert ("ENABLE_4K", "4k_enabled") in {(e.event, e.to_state) for e in reply.events}


# -- process -----------------------------------------------------------------------------


def test_health_is_serving(rules_server):
    with rules_server.channel() as channel:
        assert health_status(channel) == HEALTH_SERVING
        assert health_status(channel, "stb.rules.v1.Rules") == HEALTH_SERVING


def test_sigterm_exits_0(rules_server):
    """Last in the module: stops the module's rulesd."""
    rules_server.expect_exit = True
    assert rules_server.alive(), rules_server.log_tail()
    code = rules_server.terminate(timeout=10)
    assert code == 0, f"rulesd exited with {code} after SIGTERM\n{rules_server.log_tail()}"
