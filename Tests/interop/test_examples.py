"""Every command example we show works against the demo data: the `Examples:` of
`stbctl --help` and the commands `scripts/up` prints, run against a real catalogd, rulesd
and projectd holding the demo catalog and rules (services/catalog/seeds/demo.json), the
demo project scripts/up makes (scripts/demo-project, without members: no gateway here)
and stubd with the demo stub file (services/stubs/demo-stubs.json, its mocks on ports of
their own).

Fixtures (conftest.py): `catalog_server`, `rules_server`, `project_server`, `stbctl_bin`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time

import pytest

from conftest import REPO, _free_port, fresh_database, own_catalog_database
from test_edge import Edge

pytestmark = pytest.mark.skipif(
    not (os.environ.get("STB_CATALOGD_BIN") and os.environ.get("STB_RULESD_BIN")),
    reason="STB_CATALOGD_BIN and STB_RULESD_BIN must be set: these tests need catalogd and rulesd",
)

DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"


@pytest.fixture(scope="module")
def catalog_database():
    with own_catalog_database("examples") as url:
        yield url


@pytest.fixture(scope="module")
def env(catalog_server, rules_server, project_server):
    """The environment examples run in: the demo's services as stbctl's defaults."""
    variables = {k: v for k, v in os.environ.items() if not k.startswith("STB_") or k.endswith("_BIN") or k == "STB_TOKEN"}
    variables.update(STB_CATALOG_ADDR=catalog_server.addr, STB_RULES_ADDR=rules_server.addr,
                     STB_PROJECT_ADDR=project_server.addr)
    return variables


@pytest.fixture(scope="module")
def stubs_server(tmp_path_factory):
    """stubd with the demo stub file, as scripts/up starts it (the mocks on free ports)."""
    from test_stubs import StubServer, stubd_binary

    folder = tmp_path_factory.mktemp("stubs")
    demo = json.loads((REPO / "services" / "stubs" / "demo-stubs.json").read_text())
    demo.pop("$schema", None)
    for mock in demo["mocks"]:
        mock["port"] = _free_port()
    (folder / "demo-stubs.json").write_text(json.dumps(demo))
    with fresh_database(f"stubs_examples_{os.getpid()}", "stubs") as url:
        server = StubServer(stubd_binary(), folder / "stubd.log", {
            "STUBS_PORT": str(_free_port()), "STUBS_DATABASE_URL": url,
            "STUBS_MIGRATIONS_DIR": str(REPO / "services" / "stubs" / "migrations"),
            "STUBS_FILE": str(folder / "demo-stubs.json"),
        }).start()
        try:
            yield server
        finally:
            server.kill()


@pytest.fixture(scope="module")
def edge(catalog_server, rules_server, tmp_path_factory):
    """scripts/edge in front of this module's services, for the examples that go through it."""
    server = Edge(tmp_path_factory.mktemp("edge") / "state", catalog_server.addr, rules_server.addr).start()
    yield server
    server.terminate()


@pytest.fixture(scope="module")
def demo(stbctl_bin, env):
    """The demo catalog and rules imported, and rulesd caught up with the catalog."""
    def run(*args):
        result = subprocess.run([str(stbctl_bin), *args], capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
        assert result.returncode == 0, f"stbctl {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout
    revision = int(run("seed", "import", str(DEMO_SEED)).strip().splitlines()[-1].rsplit(" ", 1)[1])
    deadline = time.monotonic() + 30
    while json.loads(run("rules", "check", "--json"))["catalog_revision"] < revision:
        assert time.monotonic() < deadline, "rulesd did not catch up with the demo catalog"
        time.sleep(0.1)
    run("rules", "import", str(DEMO_SEED))
    project = subprocess.run([str(REPO / "scripts" / "demo-project"), str(stbctl_bin)], capture_output=True, text=True,
                             timeout=120, env={**env, "DEMO_PROJECT_MEMBERS": ""}, cwd=REPO)
    assert project.returncode == 0, f"scripts/demo-project: {project.stdout}{project.stderr}"
    return stbctl_bin


def help_examples(stbctl_bin) -> list[str]:
    # Wide enough that no example is wrapped.
    text = subprocess.run([str(stbctl_bin), "--help"], capture_output=True, text=True, timeout=10,
                          env={**os.environ, "COLUMNS": "300"}).stdout
    block = text.split("Examples:", 1)[1]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("stbctl ")]


def up_examples() -> list[str]:
    """The commands scripts/up prints after start-up (its `$bin/stbctl …` lines, pipes
    included), with `stbctl` standing for the binary."""
    script = (REPO / "scripts" / "up").read_text()
    lines = re.findall(r"^\s*([^\n]*\$bin/stbctl [^\n]*?)\s*(?:\(.*\))?$", script, flags=re.M)
    return [line.strip().replace("$bin/stbctl", "stbctl") for line in lines]


# Examples that show a refusal on purpose: their exit status and what they print.
REFUSALS = {
    "max_video_bitrate_kbps\": 60000": (1, "error video-bitrate-bound"),
    "max_video_bitrate_kbps=60000": (1, "stbctl: FAILED_PRECONDITION: this change breaks 1 rule: video-bitrate-bound"),
}


def run_example(stbctl_bin, env, command: str) -> None:
    """Runs `command` (a shell line with stbctl in it) with our stbctl; `watch` must
    still be following after a second, a refusal shown on purpose must be that refusal,
    everything else must exit 0."""
    shell = command.replace("stbctl", shlex.quote(str(stbctl_bin)), 1)
    process = subprocess.Popen(["bash", "-c", shell], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if " watch" in command:
        time.sleep(1)
        assert process.poll() is None, f"{command}: exited {process.returncode}: {process.stderr.read()}"
        process.terminate()
        process.wait(timeout=10)
        return
    out, err = process.communicate(timeout=60)
    expected, shown = next(((code, text) for marker, (code, text) in REFUSALS.items() if marker in command), (0, ""))
    assert process.returncode == expected, f"{command}: exited {process.returncode}\n{out}{err}"
    assert shown in out + err


def test_help_has_examples(stbctl_bin):
    assert len(help_examples(stbctl_bin)) >= 8


def test_up_prints_examples():
    assert len(up_examples()) >= 4


def test_every_help_example_works(demo, env):
    for command in help_examples(demo):
        run_example(demo, env, command)


def test_every_example_scripts_up_prints_works(demo, env, edge, stubs_server):
    env = {**env, "STB_STUBS_ADDR": stubs_server.addr}
    for command in up_examples():
        run_example(demo, env, command.replace("$edge_http_port", str(edge.http_port)))


def readme_examples() -> list[tuple[str, list[str]]]:
    """The README's `$ stbctl …` lines, each with the output lines shown under it."""
    lines = (REPO / "README.md").read_text().splitlines()
    examples = []
    for index, line in enumerate(lines):
        if line.startswith("$ stbctl "):
            shown = []
            for following in lines[index + 1:]:
                if following.startswith(("$ ", "```")):
                    break
                shown.append(following)
            examples.append((line[2:], shown))
    return examples


def test_every_readme_example_shows_what_it_says(demo, env):
    examples = readme_examples()
    assert examples
    for command, shown in examples:
        shell = command.replace("stbctl", shlex.quote(str(demo)), 1)
        result = subprocess.run(["bash", "-c", shell], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        refused = bool(shown) and shown[0].startswith("stbctl: ")
        assert result.returncode == (1 if refused else 0), f"{command}: exited {result.returncode}\n{result.stdout}{result.stderr}"
        output = (result.stdout + result.stderr).splitlines()
        for line in shown:
            assert line in output, f"{command}: README shows {line!r}, stbctl printed:\n" + "\n".join(output)
