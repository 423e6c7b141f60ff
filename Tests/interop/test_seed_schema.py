"""Seed documents against services/catalog/seed.schema.json (JSON Schema 2020-12)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from conftest import REPO

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = REPO / "services" / "catalog" / "seed.schema.json"
DEMO = REPO / "services" / "catalog" / "seeds" / "demo.json"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator, document):
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_schema_accepts_the_demo_seed(validator):
    assert errors(validator, json.loads(DEMO.read_text())) == []


def test_schema_accepts_a_generated_seed(validator, tmp_path):
    out = tmp_path / "seed.json"
    subprocess.run([sys.executable, str(REPO / "scripts" / "gen-seed"), "500", str(out)],
                   check=True, timeout=60)
    document = json.loads(out.read_text())
    count = sum(len(g.get("options", [])) for m in document["modules"] for g in m.get("groups", []))
    assert count == 500
    assert errors(validator, document) == []


def test_schema_rejects_a_string_default_for_an_integer_option(validator):
    document = {"modules": [{"key": "m", "name": "M", "groups": [{"key": "g", "name": "G", "options": [
        {"key": "volume", "name": "Volume", "type": "integer", "default": 5}]}]}]}
    assert errors(validator, document) == []
    bad = copy.deepcopy(document)
    bad["modules"][0]["groups"][0]["options"][0]["default"] = "5"
    problems = errors(validator, bad)
    assert problems, "a string default for an integer option passed the schema"
    assert any(p.startswith("modules/0/groups/0/options/0/default") for p in problems), problems
