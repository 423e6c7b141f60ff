"""The demonstration in a short form: projectd load-tested alone against stubd mocks of
the catalog, rules and gateway (load_demo.py; in full: scripts/demo-load).

Needs stubd, projectd and stbctl ($STB_STUBD_BIN, $STB_PROJECTD_BIN, $STB_STBCTL_BIN, else
.build/debug) and the database environment of `eval "$(scripts/db env)"`.
"""

from __future__ import annotations

import json
import os

import jsonschema

from conftest import REPO, fresh_database
from load_demo import loads, run_demo, summary


def binary(variable: str, name: str) -> str:
    return os.environ.get(variable) or str(REPO / ".build" / "debug" / name)


def test_projectd_alone_holds_its_thresholds_and_shows_the_rules_fault(tmp_path):
    with fresh_database(f"project_demo_{os.getpid()}", "project") as project_db, \
            fresh_database(f"stubs_demo_{os.getpid()}", "stubs") as stubs_db:
        result = run_demo(
            stubd=binary("STB_STUBD_BIN", "stubd"), projectd=binary("STB_PROJECTD_BIN", "projectd"),
            stbctl=binary("STB_STBCTL_BIN", "stbctl"), project_db=project_db, stubs_db=stubs_db,
            workdir=tmp_path, rate=20, duration="3s", evaluate_ms=5, fault_evaluate_ms=100, fault_probability=0.25)
    report = summary(result)
    # The stub file as rendered for the run fits the published schema.
    schema = json.loads((REPO / "services" / "stubs" / "stub.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads((tmp_path / "stubs.json").read_text()))
    # Every action ran; the faulted load's error threshold failed, so the run is PARTIAL
    # (and stbctl exits 1).
    assert result["status"] == "PARTIAL" and result["exit"] == 1, report
    assert all(step["held"] for step in result["steps"] if step["type"] != "LOAD"), report
    baseline, faulted = loads(result)
    assert all(verdict["passed"] for verdict in baseline["thresholds"]), report
    assert baseline["total"]["statuses"] == {"OK": 60}, report
    # The rules mock's resets reach projectd's callers as UNAVAILABLE with projectd's own
    # message, and its slower answers as projectd's latency.
    statuses = faulted["total"]["statuses"]
    assert statuses.get("UNAVAILABLE", 0) >= 3 and statuses.get("OK", 0) + statuses["UNAVAILABLE"] == 60, report
    assert set(faulted["total"]["errorSamples"]) == {"UNAVAILABLE: the rules service could not check the selection; retry shortly"}, report
    assert [v["passed"] for v in faulted["thresholds"]][1] is False, report
    assert faulted["total"]["latencyFromIntendedMs"]["p50"] >= 100, report
    assert baseline["total"]["latencyFromIntendedMs"]["p50"] < faulted["total"]["latencyFromIntendedMs"]["p50"], report
