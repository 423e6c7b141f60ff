"""The catalog service (catalogd) through a stock grpcio client with generated stubs.

Fixtures (conftest.py): `catalog_server` (a catalogd per module; its teardown checks the
graceful SIGTERM shutdown: exit status 0 within 10 s) and `stubs`. The database is shared
with other test modules, so tests that create things use unique keys. The demo seed
(services/catalog/seeds/demo.json) is imported only here.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid

import grpc
import pytest

import auth_tokens

from conftest import REPO

pytestmark = pytest.mark.skipif(
    not os.environ.get("STB_CATALOGD_BIN"),
    reason="STB_CATALOGD_BIN is not set: these tests need a catalogd binary",
)

ACTOR = "pytest"
# The verified caller is the token's; stb-actor decides nothing.
METADATA = (("stb-actor", ACTOR),) + tuple(auth_tokens.metadata(auth_tokens.mint("admin", ACTOR)))
TIMEOUT = 30
DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"


@pytest.fixture(scope="module")
def pb(stubs):
    return stubs.catalog_pb2


@pytest.fixture(scope="module")
def catalog(catalog_server, stubs):
    with catalog_server.channel() as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield stubs.catalog_grpc.CatalogStub(channel)


@pytest.fixture(scope="module")
def demo_imported(catalog, pb):
    """Imports the demo seed (once per module); returns the apply reply."""
    document = DEMO_SEED.read_text()
    return catalog.ImportSeed(pb.ImportSeedRequest(document_json=document, file_name="demo.json"),
                              metadata=METADATA, timeout=TIMEOUT)


def keys(items):
    return sorted(f"{item.entity} {item.key}" for item in items)


# -- seed import -----------------------------------------------------------------------


def test_import_demo_seed_dry_run_apply_then_nothing(catalog, pb, catalog_server):
    document = DEMO_SEED.read_text()
    request = dict(document_json=document, file_name="demo.json")

    dry = catalog.ImportSeed(pb.ImportSeedRequest(dry_run=True, **request),
                             metadata=METADATA, timeout=TIMEOUT)
    assert not dry.applied
    assert dry.seed_id == 0
    created = keys(dry.plan.created)
    assert "module video" in created, created
    assert any(k.startswith("option ") for k in created)
    assert any(k.startswith("group video/") for k in created)

    # Nothing was written: a second dry run plans the same changes.
    again = catalog.ImportSeed(pb.ImportSeedRequest(dry_run=True, **request),
                               metadata=METADATA, timeout=TIMEOUT)
    assert keys(again.plan.created) == created
    with pytest.raises(grpc.RpcError) as missing:
        catalog.GetModule(pb.ModuleRef(key="video"), metadata=METADATA, timeout=TIMEOUT)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    applied = catalog.ImportSeed(pb.ImportSeedRequest(**request), metadata=METADATA, timeout=TIMEOUT)
    assert applied.applied
    assert applied.revision > 0
    assert applied.seed_id > 0
    assert keys(applied.plan.created) == created

    repeat = catalog.ImportSeed(pb.ImportSeedRequest(**request), metadata=METADATA, timeout=TIMEOUT)
    assert not repeat.applied
    assert repeat.revision == applied.revision
    assert list(repeat.plan.created) == []
    assert list(repeat.plan.updated) == []
    assert list(repeat.plan.deleted) == []
    assert repeat.plan.unchanged >= len(created)


# -- configuration -----------------------------------------------------------------------


def test_get_config_has_the_video_module(catalog, pb, demo_imported):
    config = catalog.GetConfig(pb.GetConfigRequest(), metadata=METADATA, timeout=TIMEOUT)
    assert config.revision > 0
    assert not config.unchanged
    assert config.cursor
    video = next((m for m in config.modules if m.module.key == "video"), None)
    assert video is not None, [m.module.key for m in config.modules]
    assert video.groups
    assert any(group.options for group in video.groups)
    for group in video.groups:
        assert group.group.module_key == "video"
        for option in group.options:
            assert option.module_key == "video" and option.group_key == group.group.key
    assert {s.name for s in video.states} >= {"idle"}
    assert video.transitions

    # Already current: just `unchanged`.
    same = catalog.GetConfig(pb.GetConfigRequest(known_revision=config.revision),
                             metadata=METADATA, timeout=TIMEOUT)
    assert same.unchanged
    assert same.revision == config.revision
    assert list(same.modules) == []

    # Filtered by module.
    only = catalog.GetConfig(pb.GetConfigRequest(module_keys=["video"]),
                             metadata=METADATA, timeout=TIMEOUT)
    assert [m.module.key for m in only.modules] == ["video"]


def first_integer_option(config):
    for module in config.modules:
        for group in module.groups:
            for option in group.options:
                if option.type == 2:  # OPTION_TYPE_INTEGER
                    return option
    return None


def test_watch_from_the_config_cursor_sees_a_later_update(catalog, pb, demo_imported):
    config = catalog.GetConfig(pb.GetConfigRequest(module_keys=["video"]),
                               metadata=METADATA, timeout=TIMEOUT)
    # A fresh string option of our own, so the new default is certainly valid.
    group = config.modules[0].groups[0].group
    key = f"it_watch_{uuid.uuid4().hex[:8]}"
    catalog.CreateOption(pb.CreateOptionRequest(option=pb.Option(
        module_key="video", group_key=group.key, key=key, name="Watch test",
        type=pb.OPTION_TYPE_STRING, default_value="before")), metadata=METADATA, timeout=TIMEOUT)
    cursor = catalog.GetConfig(pb.GetConfigRequest(module_keys=["video"]),
                               metadata=METADATA, timeout=TIMEOUT).cursor
    assert cursor

    events: queue.Queue = queue.Queue()
    stream = catalog.Watch(pb.WatchRequest(after=cursor), metadata=METADATA, timeout=60)

    def pump():
        try:
            for event in stream:
                events.put(event)
        except grpc.RpcError as error:
            events.put(error)

    threading.Thread(target=pump, daemon=True).start()
    try:
        catalog.UpdateOption(pb.UpdateOptionRequest(ref=pb.OptionRef(key=key), default_value="after"),
                             metadata=METADATA, timeout=TIMEOUT)
        updated_at = time.monotonic()
        deadline = updated_at + 2.0
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no update event for {key} within 2 s; saw {seen}")
            try:
                event = events.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(event, grpc.RpcError):
                pytest.fail(f"the watch failed: {event.code()} {event.details()}")
            seen.append((event.entity, event.key, event.action))
            if event.entity == "option" and event.key == key:
                break
        assert event.action == stubs_action(pb, "CHANGE_ACTION_UPDATED")
        assert event.state.WhichOneof("entity") == "option"
        assert event.state.option.default_value == "after"
        assert event.actor == ACTOR
        assert event.cursor and event.revision > 0
    finally:
        stream.cancel()


def test_get_config_delta_after_one_change(catalog, pb, demo_imported):
    """A stock client that keeps a copy asks for what changed since its revision."""
    group = catalog.GetConfig(pb.GetConfigRequest(module_keys=["video"]),
                              metadata=METADATA, timeout=TIMEOUT).modules[0].groups[0].group
    key = f"it_delta_{uuid.uuid4().hex[:8]}"
    catalog.CreateOption(pb.CreateOptionRequest(option=pb.Option(
        module_key="video", group_key=group.key, key=key, name="Delta test",
        type=pb.OPTION_TYPE_STRING, default_value="before")), metadata=METADATA, timeout=TIMEOUT)
    base = catalog.GetConfig(pb.GetConfigRequest(), metadata=METADATA, timeout=TIMEOUT)
    catalog.UpdateOption(pb.UpdateOptionRequest(ref=pb.OptionRef(key=key), default_value="after"),
                         metadata=METADATA, timeout=TIMEOUT)

    delta = catalog.GetConfig(pb.GetConfigRequest(known_revision=base.revision, accept_delta=True),
                              metadata=METADATA, timeout=TIMEOUT)
    assert delta.delta and not delta.unchanged
    assert list(delta.modules) == []
    assert delta.revision > base.revision and delta.cursor
    assert delta.changes.base_revision == base.revision
    assert [o.key for o in delta.changes.options] == [key]
    assert delta.changes.options[0].default_value == "after"
    assert delta.ByteSize() < base.ByteSize() // 10

    # Without accept_delta (clients that predate deltas): the whole tree, as before.
    full = catalog.GetConfig(pb.GetConfigRequest(known_revision=base.revision),
                             metadata=METADATA, timeout=TIMEOUT)
    assert not full.delta and not full.HasField("changes")
    assert len(full.modules) == len(base.modules)

    catalog.DeleteOption(pb.OptionRef(key=key), metadata=METADATA, timeout=TIMEOUT)
    gone = catalog.GetConfig(pb.GetConfigRequest(known_revision=delta.revision, accept_delta=True),
                             metadata=METADATA, timeout=TIMEOUT)
    assert gone.delta and list(gone.changes.deleted_options) == [key]


def stubs_action(pb, name):
    # ChangeAction lives in stb.common.v1; reach it through the catalog module's import.
    import importlib

    return getattr(importlib.import_module("stb.common.v1.common_pb2"), name)


# -- bad input -------------------------------------------------------------------------


def test_create_integer_option_with_a_non_integer_default(catalog, pb, demo_imported):
    config = catalog.GetConfig(pb.GetConfigRequest(module_keys=["video"]),
                               metadata=METADATA, timeout=TIMEOUT)
    group = config.modules[0].groups[0].group
    with pytest.raises(grpc.RpcError) as error:
        catalog.CreateOption(pb.CreateOptionRequest(option=pb.Option(
            module_key="video", group_key=group.key, key=f"it_bad_{uuid.uuid4().hex[:8]}",
            name="Bad", type=pb.OPTION_TYPE_INTEGER, default_value="abc")),
            metadata=METADATA, timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "default_value" in error.value.details(), error.value.details()


def test_get_missing_option_is_not_found(catalog, pb):
    with pytest.raises(grpc.RpcError) as error:
        catalog.GetOption(pb.OptionRef(key=f"no_such_{uuid.uuid4().hex[:8]}"),
                          metadata=METADATA, timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_invalid_seed_document_names_the_path(catalog, pb):
    document = json.dumps({"modules": [{"key": "Bad Key"}]})
    with pytest.raises(grpc.RpcError) as error:
        catalog.ImportSeed(pb.ImportSeedRequest(document_json=document, dry_run=True),
                           metadata=METADATA, timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "modules[0].key" in error.value.details(), error.value.details()
