"""The web page (services/gateway/web) in a real headless Chromium, through the real edge
over TLS, against real gatewayd, catalogd, rulesd and projectd on fresh databases.

The browser signs in with the page's form (cookies, no token in script), reads the
catalog from /events and calls the services with Connect JSON. The tests check what a
user sees: the demo catalog, a change made with stbctl appearing without a reload, a
refused edit shown next to its option (and nothing changed, checked over RPC), the
connection state while the gateway is killed and restarted (and every change made
meanwhile arriving), a viewer without edit controls whose forced edit is refused, the
10,000-option catalog's first render, commit-to-visible latency, and the page's size
and origins. Screenshots of the main views go to $STB_SCREENSHOT_DIR
(.local/screenshots by default).

Needs Debian's chromium and chromium-driver (scripts/install-deps installs them) and
Python selenium; skipped without them unless STB_REQUIRE_BROWSER is set, which makes a
missing browser a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from conftest import HOST, REPO
from test_edge import Edge
from test_realtime import ADMIN, ADMIN_PASSWORD, Platform, binary, pb, platform_databases  # noqa: F401 - pb is a fixture

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _browser_missing() -> str:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "Python selenium is not installed (pip install -r Tests/interop/requirements.txt)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is missing (Debian: apt-get install {package}; scripts/install-deps does it)"
    if not (shutil.which("nghttpx") and shutil.which("nghttpd")):
        return "nghttpx or nghttpd is missing (Debian: nghttp2-proxy nghttp2-server)"
    return ""


MISSING = _browser_missing()
if MISSING and os.environ.get("STB_REQUIRE_BROWSER"):
    raise RuntimeError(f"STB_REQUIRE_BROWSER is set but {MISSING}")

pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=f"browser tests skipped: {MISSING}"),
    pytest.mark.skipif(
        not all(os.environ.get(v) for v in ("STB_GATEWAYD_BIN", "STB_CATALOGD_BIN", "STB_RULESD_BIN", "STB_PROJECTD_BIN")),
        reason="STB_GATEWAYD_BIN, STB_CATALOGD_BIN, STB_RULESD_BIN and STB_PROJECTD_BIN must be set"),
]

WEB_DIR = REPO / "services" / "gateway" / "web"
DEMO_SEED = REPO / "services" / "catalog" / "seeds" / "demo.json"
SCREENSHOTS = Path(os.environ.get("STB_SCREENSHOT_DIR") or REPO / ".local" / "screenshots")
TIMEOUT = 20
ENGINEER, VIEWER = ("eve", "eve password 0123"), ("vic", "vic password 0123")
PROJECT = "webdemo"


class WebPlatform(Platform):
    """The realtime test's platform with the gateway serving the page."""

    def gateway_env(self):
        return {**super().gateway_env(), "GATEWAY_WEB_DIR": str(WEB_DIR), "GATEWAY_HEARTBEAT_SECONDS": "2",
                "GATEWAY_STREAM_QUOTAS": "viewer:20,operator:20,engineer:20,admin:100,service:20"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    with platform_databases("web") as urls:
        platform = WebPlatform(tmp, urls).start()
        try:
            yield platform
        finally:
            platform.stop()


@pytest.fixture(scope="module")
def edge(platform, tmp_path_factory):
    server = Edge(tmp_path_factory.mktemp("web-edge") / "state", platform.addr("catalog"), platform.addr("rules"),
                  STB_GATEWAY_ADDR=platform.addr("gateway"), STB_PROJECT_ADDR=platform.addr("project")).start()
    yield server
    server.terminate()


@pytest.fixture(scope="module")
def admin_token(platform, pb):
    with grpc.insecure_channel(platform.addr("gateway")) as channel:
        login = pb.gateway_grpc.AuthStub(channel).Login(
            pb.gateway.LoginRequest(username=ADMIN, password=ADMIN_PASSWORD), timeout=TIMEOUT)
    return login.access_token


def md(token):
    return [("authorization", f"Bearer {token}")]


@pytest.fixture(scope="module")
def world(platform, pb, admin_token):
    """The demo catalog and rules, an engineer and a viewer, and a project the viewer is a
    member of."""
    auth_channel = grpc.insecure_channel(platform.addr("gateway"))
    auth = pb.gateway_grpc.AuthStub(auth_channel)
    ids = {}
    for (name, password), role in ((ENGINEER, pb.gateway.ROLE_ENGINEER), (VIEWER, pb.gateway.ROLE_VIEWER)):
        ids[name] = auth.CreateUser(pb.gateway.CreateUserRequest(username=name, role=role, password=password),
                                    metadata=md(admin_token), timeout=TIMEOUT).id
    auth_channel.close()
    document = DEMO_SEED.read_text()
    catalog = catalog_stub(platform, pb)
    seeded = catalog.ImportSeed(pb.catalog.ImportSeedRequest(document_json=document, file_name="demo.json"),
                                metadata=md(admin_token), timeout=60)
    deadline = time.monotonic() + 30
    while (rules := stbctl(platform, admin_token, "rules", "import", str(DEMO_SEED))).returncode != 0:
        # rulesd may not have the demo catalog yet.
        assert time.monotonic() < deadline, rules.stderr
        time.sleep(0.3)
    projects = project_stub(platform, pb)
    deadline = time.monotonic() + 30
    while True:
        try:
            projects.CreateProject(pb.project.CreateProjectRequest(key=PROJECT, name="Web demo"), metadata=md(admin_token), timeout=TIMEOUT)
            break
        except grpc.RpcError as error:
            # The project service may not have caught up with the demo catalog yet.
            assert time.monotonic() < deadline, error
            time.sleep(0.3)
    projects.SetMember(pb.project.SetMemberRequest(project_key=PROJECT, user_id=ids["vic"], role=pb.project.PROJECT_ROLE_VIEWER),
                       metadata=md(admin_token), timeout=TIMEOUT)
    return {"revision": seeded.revision, "ids": ids}


def catalog_stub(platform, pb):
    return pb.catalog_grpc.CatalogStub(grpc.insecure_channel(platform.addr("catalog")))


def project_stub(platform, pb):
    return pb.project_grpc.ProjectsStub(grpc.insecure_channel(platform.addr("project")))


def stbctl(platform, token, *args):
    env = {**os.environ, "STB_TOKEN": token, "STB_CATALOG_ADDR": platform.addr("catalog"),
           "STB_RULES_ADDR": platform.addr("rules"), "STB_PROJECT_ADDR": platform.addr("project"),
           "STB_GATEWAY_ADDR": platform.addr("gateway")}
    return subprocess.run([str(binary("STB_STBCTL_BIN", "stbctl")), *args], env=env, capture_output=True, text=True, timeout=60)


# MARK: the browser


class Page:
    """One headless Chromium on the page, with helpers to wait on what it shows."""

    def __init__(self, url: str):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        options = Options()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                         "--disable-gpu", "--no-first-run", "--disable-extensions", "--disable-background-networking"):
            options.add_argument(argument)
        # The edge's certificate is self-signed.
        options.accept_insecure_certs = True
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_script_timeout(TIMEOUT)
        self.url = url
        self.messages: list[str] = []

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def call(self, path, body):
        """A Connect JSON call made by the page's own script (its cookies)."""
        return self.driver.execute_async_script("""
            const [path, body, done] = arguments;
            fetch('/' + path, {method: 'POST', credentials: 'same-origin',
                               headers: {'content-type': 'application/json'}, body: JSON.stringify(body)})
              .then(async (r) => done({status: r.status, body: await r.text()}))
              .catch((e) => done({status: 0, body: String(e)}));""", path, body)

    def wait(self, predicate, what, timeout=TIMEOUT, interval=0.02):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                try:
                    streams = self.js("return window.stb?.live?.()")
                except Exception:  # noqa: BLE001 - only diagnostics
                    streams = None
                raise AssertionError(f"timed out waiting for {what}; streams: {streams}; console: {self.console()[-10:]}")
            time.sleep(interval)

    def console(self):
        """Every console message so far (the driver hands each one out once)."""
        try:
            self.messages += [entry["message"] for entry in self.driver.get_log("browser")]
        except Exception:  # noqa: BLE001 - only diagnostics
            pass
        return self.messages

    def state(self):
        return self.js("return document.getElementById('connection-state').textContent")

    def sign_in(self, username, password):
        from selenium.webdriver.common.by import By

        self.driver.get(self.url)
        self.wait(lambda: self.js("return !document.getElementById('sign-in').hidden"), "the sign-in form")
        self.driver.find_element(By.ID, "username").send_keys(username)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "#sign-in-form button[type=submit]").click()
        self.wait(lambda: self.js("return !document.getElementById('app').hidden"), "the signed-in page")
        self.wait(lambda: self.state() == "live", "the connection to be live")

    def tab(self, name):
        self.js(f"document.getElementById('tab-{name}').click()")

    def option_default(self, key):
        """The default value the tree shows for option `key` (filtered into view)."""
        return self.js("""
            const key = arguments[0];
            const input = document.getElementById('catalog-filter');
            if (input.value !== key) { input.value = key; input.dispatchEvent(new Event('input')); }
            const row = document.querySelector(`#catalog-tree .row[data-entity=option][data-key="${key}"] .default`);
            return row ? row.textContent : null;""", key)

    def press(self, text, scope="body"):
        """Clicks the button labelled `text` in `scope`, found and clicked in one script
        (the live view may redraw between a lookup and a click); False when absent."""
        return self.js("""
            const [text, scope] = arguments;
            const button = [...document.querySelectorAll(`${scope} button`)].find((b) => b.textContent === text);
            if (button) button.click();
            return !!button;""", text, scope)

    def screenshot(self, name, top=True):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if top:
            self.js("window.scrollTo(0, 0)")
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    def close(self):
        self.driver.quit()


@pytest.fixture(scope="module")
def admin_page(edge, world):
    page = Page(f"https://localhost:{edge.tls_port}/")
    page.sign_in(ADMIN, ADMIN_PASSWORD)
    yield page
    page.close()


def clear_filter(page):
    page.js("const i = document.getElementById('catalog-filter'); i.value = ''; i.dispatchEvent(new Event('input'));")


# MARK: tests


def test_sign_in_and_the_demo_catalog_renders(admin_page, world):
    page = admin_page
    assert page.js("return document.getElementById('whoami').textContent").startswith(ADMIN)
    # No token is readable by script: the cookies are HttpOnly.
    assert "stb_access" not in page.js("return document.cookie")
    page.wait(lambda: page.js("return window.stb.catalog.model.placeOf.size") > 50, "the demo catalog")
    demo = json.loads(DEMO_SEED.read_text())
    modules = [m["key"] for m in demo["modules"]]
    shown = page.js("return [...window.stb.catalog.model.modules.keys()]")
    assert set(modules) <= set(shown)
    # Rows are in the DOM for the modules at the top, with groups, options and machines.
    clear_filter(page)
    rows = page.js("return [...document.querySelectorAll('#catalog-tree .row')].map(r => [r.dataset.entity, r.dataset.key])")
    assert rows[0][0] == "module" and any(kind == "group" for kind, _ in rows) and any(kind == "option" for kind, _ in rows)
    # The video module's state machine: its states and transitions on a row of their own.
    assert page.js("return window.stb.catalog.reveal('video#machine')")
    machine = page.js("return document.querySelector('#catalog-tree .row[data-key=\"video#machine\"]').textContent")
    assert "idle" in machine and "ENABLE_4K" in machine, machine
    assert page.option_default("brightness") == "50"
    clear_filter(page)
    page.screenshot("catalog")


def test_a_change_made_with_stbctl_appears_without_a_reload(admin_page, platform, admin_token):
    page = admin_page
    page.js("window.__sameDocument = 'yes'")
    assert page.option_default("contrast") == "50"
    result = stbctl(platform, admin_token, "update", "option", "contrast", "--default", "61")
    assert result.returncode == 0, result.stderr
    committed = time.monotonic()
    page.wait(lambda: page.option_default("contrast") == "61", "the change in the page", timeout=20)
    elapsed = time.monotonic() - committed
    print(f"stbctl change visible after {elapsed * 1000:.0f} ms")
    # Well within the wait (on an idle machine, under a second): pushed, not found by chance.
    assert elapsed < 10
    assert page.js("return window.__sameDocument") == "yes", "the page was reloaded"
    # Merged in place and highlighted.
    assert page.js("return document.querySelector('#catalog-tree .row[data-key=contrast]').classList.contains('changed')")
    clear_filter(page)


def test_admin_edits_the_catalog_in_the_page(admin_page, platform, pb, admin_token):
    page = admin_page
    assert page.option_default("sharpness") == "10"
    # Edit an option: the form, then the tree when the change comes back live.
    assert page.press("Edit", "#catalog-tree .row[data-key=sharpness]")
    page.js("""const form = document.querySelector('#catalog-editor form');
               form.elements.defaultValue.value = '12';
               form.requestSubmit();""")
    page.wait(lambda: page.option_default("sharpness") == "12", "the edited default in the tree")
    assert catalog_stub(platform, pb).GetOption(pb.catalog.OptionRef(key="sharpness"), metadata=md(admin_token), timeout=TIMEOUT).default_value == "12"
    # A new module, then a group in it.
    clear_filter(page)
    assert page.press("Add module")
    page.js("""const form = document.querySelector('#catalog-editor form');
               form.elements.key.value = 'webmodule'; form.elements.name.value = 'From the page';
               form.requestSubmit();""")
    page.wait(lambda: page.js("return window.stb.catalog.model.modules.has('webmodule')"), "the new module")
    page.js("window.stb.catalog.reveal('webmodule')")
    page.wait(lambda: page.press("Add group", "#catalog-tree .row[data-key=webmodule]"), "the module's row")
    page.js("""const form = document.querySelector('#catalog-editor form');
               form.elements.key.value = 'basics'; form.elements.name.value = 'Basics';
               form.requestSubmit();""")
    page.wait(lambda: page.js("return window.stb.catalog.model.modules.get('webmodule')?.groups.has('basics')"), "the new group")
    # A bad meta document is refused with the service's message, and nothing changes.
    page.option_default("sharpness")
    assert page.press("Edit", "#catalog-tree .row[data-key=sharpness]")
    page.js("""const form = document.querySelector('#catalog-editor form');
               form.elements.metaJson.value = '{"min": 20, "max": 10}';
               form.requestSubmit();""")
    message = page.wait(lambda: page.js("return document.querySelector('#catalog-editor .status.error')?.textContent"), "the refusal")
    assert "min" in message, message
    assert catalog_stub(platform, pb).GetOption(pb.catalog.OptionRef(key="sharpness"), metadata=md(admin_token), timeout=TIMEOUT).meta_json != '{"min": 20, "max": 10}'
    page.press("Close", "#catalog-editor")
    clear_filter(page)


def test_an_invalid_edit_shows_the_violation_and_changes_nothing(admin_page, platform, pb, admin_token):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = admin_page
    projects = project_stub(platform, pb)
    before = projects.GetProjectConfig(pb.project.GetProjectConfigRequest(project_key=PROJECT), metadata=md(admin_token), timeout=TIMEOUT)
    page.tab("project")
    page.wait(lambda: page.js("return !window.stb.project.busy() && !!document.querySelector('#project-options tr[data-option=brightness] .value-input')"),
              "the project's options")
    # The catalog's change (stbctl, above) is the project's effective value.
    assert page.js("return document.querySelector('#project-options tr[data-option=contrast] .value-input').value") == "61"
    field = page.driver.find_element(By.CSS_SELECTOR, "#project-options tr[data-option=brightness] .value-input")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("150", Keys.TAB)
    shown = page.wait(lambda: page.js("return document.querySelector('td.violation[data-option=brightness]').textContent"), "the violation")
    assert "150" in shown and "maximum 100" in shown, shown
    page.js("document.querySelector('#project-options tr[data-option=brightness]').scrollIntoView({block: 'center'})")
    page.screenshot("project", top=False)
    after = projects.GetProjectConfig(pb.project.GetProjectConfigRequest(project_key=PROJECT), metadata=md(admin_token), timeout=TIMEOUT)
    assert after.hash == before.hash
    assert after.canonical_json == before.canonical_json
    assert page.js("return document.querySelector('#project-options tr[data-option=brightness] .value-input').value") == "50"
    # A valid edit goes through and shows its source.
    field = page.driver.find_element(By.CSS_SELECTOR, "#project-options tr[data-option=brightness] .value-input")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("80", Keys.TAB)
    page.wait(lambda: page.js("return document.querySelector('#project-options tr[data-option=brightness] td.source')?.textContent") == "override",
              "the override")


def test_alarm_raised_by_a_tightened_constraint_is_acknowledged_in_the_page(admin_page, platform, pb, admin_token):
    from selenium.webdriver.common.by import By

    page = admin_page
    page.tab("alarms")
    # The project overrides brightness with 80; a maximum of 70 makes its draft invalid.
    catalog = catalog_stub(platform, pb)
    catalog.UpdateOption(pb.catalog.UpdateOptionRequest(ref=pb.catalog.OptionRef(key="brightness"),
                                                        meta_json=json.dumps({"min": 0, "max": 70, "step": 1, "unit": "%"})),
                         metadata=md(admin_token), timeout=TIMEOUT)
    page.wait(lambda: page.js("return !!document.querySelector('#alarms-list li.alarm.active button')"), "an active alarm", timeout=30)
    page.screenshot("alarms")
    page.driver.find_element(By.CSS_SELECTOR, "#alarms-list li.alarm.active input").send_keys("seen in the browser test")
    page.driver.find_element(By.CSS_SELECTOR, "#alarms-list li.alarm.active button").click()
    page.wait(lambda: page.js("return !!document.querySelector('#alarms-list li.alarm.acknowledged')"), "the acknowledgement")
    catalog.UpdateOption(pb.catalog.UpdateOptionRequest(ref=pb.catalog.OptionRef(key="brightness"),
                                                        meta_json=json.dumps({"min": 0, "max": 100, "step": 1, "unit": "%"})),
                         metadata=md(admin_token), timeout=TIMEOUT)


def test_versions_diff_change_request_and_signoff_in_the_page(admin_page, platform, pb, admin_token, world):
    page = admin_page
    projects = project_stub(platform, pb)
    projects.SetMember(pb.project.SetMemberRequest(project_key=PROJECT, user_id=world["ids"]["eve"], role=pb.project.PROJECT_ROLE_EDITOR),
                       metadata=md(admin_token), timeout=TIMEOUT)
    projects.SetSignoffAspects(pb.project.SetSignoffAspectsRequest(project_key=PROJECT, aspects=[
        pb.project.SignoffAspect(name="qa", least_role=pb.project.PROJECT_ROLE_APPROVER)]), metadata=md(admin_token), timeout=TIMEOUT)
    page.tab("project")
    settled = lambda: page.js("return !window.stb.project.busy()")  # noqa: E731
    page.wait(settled, "the project")
    page.js("""const form = document.querySelector("form[aria-label='Commit the draft']");
               form.elements.message.value = 'first from the browser';
               form.querySelector('button').click();""")
    page.wait(lambda: "Committed version 1" in page.js("return document.getElementById('project-status').textContent"), "the commit")
    # An engineer proposes a change (to an included option: it makes a new version); the
    # admin (not its author) approves and applies it.
    with grpc.insecure_channel(platform.addr("gateway")) as channel:
        eve = pb.gateway_grpc.AuthStub(channel).Login(pb.gateway.LoginRequest(username=ENGINEER[0], password=ENGINEER[1]), timeout=TIMEOUT)
    request = projects.CreateChangeRequest(pb.project.CreateChangeRequestRequest(
        project_key=PROJECT, changes=[pb.project.OptionChange(key="volume_max", value_json="90")], reason="louder"),
        metadata=md(eve.access_token), timeout=TIMEOUT)
    item = f"#change-requests li[data-request='{request.id}']"
    page.wait(lambda: page.js(f"return !!document.querySelector(\"{item}\")"), "the change request (live)")
    page.wait(settled, "the project")
    page.wait(lambda: page.press("Approve", item), "the Approve button")
    page.wait(lambda: page.js(f"return [...document.querySelectorAll(\"{item} button\")].map(b => b.textContent).join()") == "Apply", "approved")
    page.wait(lambda: page.press("Apply", item), "the Apply button")
    page.wait(lambda: " applied " in (page.js(f"return document.querySelector(\"{item}\")?.textContent") or ""), "applied")
    applied = projects.GetChangeRequest(pb.project.ChangeRequestRef(project_key=PROJECT, id=request.id), metadata=md(admin_token), timeout=TIMEOUT)
    assert applied.status == pb.project.CHANGE_REQUEST_STATUS_APPLIED and applied.applied_version == 2, applied
    page.wait(settled, "the project")
    # The difference between the two versions.
    page.js("""document.getElementById('diff-from').value = '1'; document.getElementById('diff-to').value = '2';
               document.querySelector("form[aria-label='Compare versions'] button").click();""")
    diff = page.wait(lambda: page.js("return document.getElementById('project-diff').textContent"), "the diff")
    assert "changed volume_max: 80 → 90" in diff, diff
    # Signing the one aspect releases version 2.
    assert "not released" in page.js("return document.getElementById('release-status').textContent")
    page.wait(lambda: page.press("Sign off"), "the Sign off button")
    page.wait(lambda: page.js("return document.getElementById('release-status')?.textContent") == "v2: released", "the release")
    status = projects.GetReleaseStatus(pb.project.GetReleaseStatusRequest(project_key=PROJECT), metadata=md(admin_token), timeout=TIMEOUT)
    assert status.released and status.version == 2


def test_a_dashboard_is_arranged_saved_and_shared(admin_page, platform, pb, admin_token):
    from selenium.webdriver.common.by import By

    page = admin_page
    page.tab("dashboards")
    form = lambda: page.driver.find_element(By.ID, "dashboard-form")  # noqa: E731
    form().find_element(By.NAME, "name").send_keys("Operations")
    page.js("document.querySelector('#dashboard-form input[name=shared]').click()")
    for kind, key in (("option_value", "contrast"), ("project_validity", PROJECT), ("alarm_list", "alarms")):
        page.js("document.getElementById('widget-kind').value = arguments[0]", kind)
        page.driver.find_element(By.XPATH, "//button[text()='Add widget']").click()
        field = page.driver.find_elements(By.CSS_SELECTOR, "#dashboard-form .widget-editor")[-1].find_element(By.CSS_SELECTOR, "input[type=text]")
        field.clear()
        field.send_keys(key)
        page.js("arguments[0].dispatchEvent(new Event('change'))", field)
    page.driver.find_element(By.XPATH, "//button[text()='Create dashboard']").click()
    page.wait(lambda: "saved" in page.js("return document.getElementById('dashboards-status').textContent"), "the saved dashboard")
    reply = page.call("stb.gateway.v1.Dashboards/ListDashboards", {})
    saved = [d for d in json.loads(reply["body"]).get("dashboards", []) if d["name"] == "Operations"]
    assert len(saved) == 1 and saved[0].get("shared") is True
    layout = json.loads(saved[0]["layoutJson"])
    assert [w["type"] for w in layout["widgets"]] == ["option_value", "project_validity", "alarm_list"]
    assert page.js("return document.querySelector('#dashboard-grid .widget .value').textContent") == "61"
    page.screenshot("dashboard")
    page.tab("catalog")


def test_gateway_killed_and_restarted_the_page_reconnects_with_every_change(admin_page, platform, pb, admin_token):
    page = admin_page
    clear_filter(page)
    catalog = catalog_stub(platform, pb)
    page.js("window.stbMetrics.applied.length = 0")
    snapshots = page.js("return window.stbMetrics.snapshots.filter(s => s.topic === 'catalog').length")
    platform.servers["gateway"].kill()
    page.wait(lambda: page.state() == "reconnecting", "reconnecting", timeout=30)
    keys = ["brightness", "contrast", "overscan_percent", "peak_brightness_nits", "max_video_bitrate_kbps"]
    values = {"brightness": "41", "contrast": "42", "overscan_percent": "3", "peak_brightness_nits": "1050", "max_video_bitrate_kbps": "26000"}
    for key in keys:
        catalog.UpdateOption(pb.catalog.UpdateOptionRequest(ref=pb.catalog.OptionRef(key=key), default_value=values[key]),
                             metadata=md(admin_token), timeout=TIMEOUT)
    assert page.state() == "reconnecting"
    platform.start_gateway()
    page.wait(lambda: page.state() in ("live", "resynced"), "the connection back", timeout=60)
    shown = page.wait(lambda: (lambda got: got if all(got[k] == values[k] for k in keys) else None)(
        page.js("return Object.fromEntries(arguments[0].map(k => [k, window.stb.catalog.model.option(k)?.defaultValue]))", keys)),
        "every change made meanwhile", timeout=30)
    assert len([k for k in keys if shown[k] == values[k]]) == len(keys)
    for key in keys:
        assert page.option_default(key) == values[key]
    clear_filter(page)
    # Resumed from the last event id, the page got exactly the five changes as deltas; a
    # resync would have brought a fresh snapshot instead.
    resynced = page.js("return window.stbMetrics.snapshots.filter(s => s.topic === 'catalog').length") > snapshots
    deltas = page.js("return window.stbMetrics.applied.map(r => [r.key, r.value])")
    if not resynced:
        assert deltas == [[k, values[k]] for k in keys], deltas
    print(f"after the restart the page says {page.state()}; {'a fresh snapshot' if resynced else f'{len(deltas)} deltas replayed'}")


def test_a_viewer_sees_no_edit_controls_a_forced_edit_is_refused_and_sign_out_ends_the_session(edge, world, platform, pb, admin_token):
    page = Page(f"https://localhost:{edge.tls_port}/")
    try:
        page.sign_in(*VIEWER)
        page.wait(lambda: page.js("return window.stb.catalog.model.placeOf.size") > 50, "the catalog")
        assert page.js("return document.querySelectorAll('#catalog-tree .row .actions button').length") == 0
        assert page.js("return document.getElementById('catalog-add-module').hidden") is True
        page.tab("project")
        page.wait(lambda: page.js("return !window.stb.project.busy() && document.querySelectorAll('#project-options tr[data-option]').length") > 10,
                  "the project")
        assert page.js("return document.querySelectorAll('#project-options input, #project-options select').length") == 0
        assert page.js("return [...document.querySelectorAll('#view-project button')].map(b => b.textContent)") == ["Compare"]
        page.tab("alarms")
        assert page.js("return document.querySelectorAll('#alarms-list button').length") == 0
        before = catalog_stub(platform, pb).GetOption(pb.catalog.OptionRef(key="contrast"), metadata=md(admin_token), timeout=TIMEOUT)
        forced = page.call("stb.catalog.v1.Catalog/UpdateOption", {"ref": {"key": "contrast"}, "defaultValue": "99"})
        assert forced["status"] == 403 and json.loads(forced["body"])["code"] == "permission_denied", forced
        forced = page.call("stb.project.v1.Projects/SetOptions", {"projectKey": PROJECT, "changes": [{"key": "contrast", "valueJson": "12"}]})
        assert forced["status"] in (403, 404) and json.loads(forced["body"])["code"] in ("permission_denied", "not_found"), forced
        after = catalog_stub(platform, pb).GetOption(pb.catalog.OptionRef(key="contrast"), metadata=md(admin_token), timeout=TIMEOUT)
        assert after.default_value == before.default_value
        # Keyboard: the tabs follow the arrow keys.
        from selenium.webdriver.common.keys import Keys
        page.tab("catalog")
        page.driver.find_element("id", "tab-catalog").send_keys(Keys.ARROW_RIGHT)
        assert page.js("return document.activeElement.id") == "tab-project"
        assert page.js("return !document.getElementById('view-project').hidden && document.getElementById('view-catalog').hidden")
        # An access cookie gone (as when it expires): the next call renews it with the
        # refresh cookie and goes through.
        page.driver.delete_cookie("stb_access")
        page.tab("alarms")
        page.tab("project")
        page.wait(lambda: page.driver.get_cookie("stb_access") is not None, "a renewed access cookie")
        page.wait(lambda: page.js("return !window.stb.project.busy() && document.querySelectorAll('#project-options tr[data-option]').length") > 10,
                  "the project read again")
        # Signing out ends the session: the form is back and calls are unauthenticated.
        page.js("document.getElementById('sign-out').click()")
        page.wait(lambda: page.js("return !document.getElementById('sign-in').hidden && document.getElementById('app').hidden"), "the sign-in form")
        assert page.call("stb.catalog.v1.Catalog/GetOption", {"key": "contrast"})["status"] == 401
    finally:
        page.close()


def test_commit_to_visible_p99_over_50_changes(admin_page, platform, pb, admin_token):
    page = admin_page
    page.wait(lambda: page.state() == "live", "live", timeout=30)
    page.option_default("brightness")  # the row in view
    catalog = catalog_stub(platform, pb)
    page.js("window.stbMetrics.applied.length = 0")
    sent = {}
    for i in range(50):
        value = str(i)
        sent[value] = time.time() * 1000
        catalog.UpdateOption(pb.catalog.UpdateOptionRequest(ref=pb.catalog.OptionRef(key="brightness"), default_value=value),
                             metadata=md(admin_token), timeout=TIMEOUT)
        time.sleep(0.02)
    applied = page.wait(lambda: (lambda a: a if len(a) >= 50 and all(r["visibleAt"] for r in a) else None)(
        page.js("return window.stbMetrics.applied.filter(r => r.key === 'brightness')")), "50 changes", timeout=20)
    assert [r["value"] for r in applied[:50]] == [str(i) for i in range(50)]
    # Commit time is the change event's own; sent time is the test's, before the call.
    latencies = sorted(r["visibleAt"] - r["atMs"] for r in applied[:50])
    from_call = sorted(r["visibleAt"] - sent[r["value"]] for r in applied[:50])
    p99, p50 = latencies[int(0.99 * (len(latencies) - 1))], statistics.median(latencies)
    p99_call = from_call[int(0.99 * (len(from_call) - 1))]
    print(f"commit → visible over 50 changes: p50 {p50:.1f} ms, p99 {p99:.1f} ms (from the call: p99 {p99_call:.1f} ms); "
          f"target p99 ≤ 100 ms: {'PASS' if p99 <= 100 else 'MISS'}")
    # Shared 2-core machines are noisy: fail only far beyond the target.
    assert p99 <= 400, latencies


def test_page_size_and_no_request_to_another_origin(admin_page, edge):
    page = admin_page
    origin = f"https://localhost:{edge.tls_port}"
    on_disk = sum(p.stat().st_size for p in WEB_DIR.rglob("*") if p.is_file())
    entries = page.js("""
        return [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
          .map(e => ({name: e.name, type: e.initiatorType, size: e.decodedBodySize}));""")
    static = [e for e in entries if e["type"] in ("navigation", "script", "link", "css", "img", "other") and "/events" not in e["name"]]
    loaded = sum(e["size"] for e in static)
    print(f"page and scripts: {on_disk} bytes on disk, {loaded} bytes loaded ({len(static)} files); limit 200 KB")
    assert on_disk < 200 * 1024 and loaded < 200 * 1024
    assert all(e["name"].startswith(origin) for e in entries), [e["name"] for e in entries if not e["name"].startswith(origin)]
    requested = []
    for entry in page.driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert requested, "the CDP log recorded no request"
    foreign = [u for u in requested if not (u.startswith(origin) or u.startswith("data:"))]
    assert not foreign, foreign
    # Nothing the page does breaks the gateway's Content-Security-Policy.
    refused = [m for m in page.console() if "Content Security Policy" in m or "Refused to" in m]
    assert not refused, refused


def test_a_10000_option_catalog_renders_under_a_second(admin_page, platform, pb, admin_token):
    page = admin_page
    groups, per_group = 20, 500
    document = {"version": 1, "modules": [{"key": "bulk", "name": "Bulk", "initial_state": "", "groups": [
        {"key": f"g{g}", "name": f"Group {g}", "position": g, "options": [
            {"key": f"bulk_{g}_{o}", "name": f"Bulk option {g}.{o}", "type": "integer", "default": o,
             "meta": {"min": 0, "max": 100000}} for o in range(per_group)]}
        for g in range(groups)]}]}
    catalog = catalog_stub(platform, pb)
    catalog.ImportSeed(pb.catalog.ImportSeedRequest(document_json=json.dumps(document), file_name="bulk.json"),
                       metadata=md(admin_token), timeout=120)
    clear_filter(page)
    page.driver.refresh()
    page.wait(lambda: page.js("return window.stb?.catalog?.model.placeOf.size || 0") >= groups * per_group, "the big catalog", timeout=60)
    first, since_navigation = page.js("return [window.stbMetrics.catalogFirstRenderMs, window.stbMetrics.catalogFirstRenderAt]")
    rows, in_dom = page.js("return [window.stb.catalog.rowCount(), window.stb.catalog.shownRows()]")
    print(f"first render of {rows} rows ({groups * per_group} bulk options): {first:.1f} ms script time from the snapshot's "
          f"arrival ({since_navigation:.0f} ms after navigation start); "
          f"{in_dom} rows in the DOM; target < 1000 ms: {'PASS' if first < 1000 else 'MISS'}")
    assert first < 1000
    assert in_dom < 200, "the tree is not virtualised"
    # Scrolling through it: each frame renders only the rows in view.
    frames = page.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const tree = document.getElementById('catalog-tree');
        window.stbMetrics.rowRenders.length = 0;
        let step = 0;
        const frameTimes = [];
        let last = performance.now();
        function next() {
          const now = performance.now();
          frameTimes.push(now - last);
          last = now;
          if (step++ === 120) return done({renders: window.stbMetrics.rowRenders.slice(), frames: frameTimes.slice(1)});
          tree.scrollTop = (step * 2531) % tree.scrollHeight;
          requestAnimationFrame(next);
        }
        requestAnimationFrame(next);""")
    renders = sorted(frames["renders"])
    p95 = renders[int(0.95 * (len(renders) - 1))]
    print(f"scrolling 120 frames across the tree: row render median {statistics.median(renders):.2f} ms, p95 {p95:.2f} ms, "
          f"max {renders[-1]:.2f} ms; frame interval median {statistics.median(frames['frames']):.1f} ms; "
          f"target p95 ≤ 16 ms: {'PASS' if p95 <= 16 else 'MISS'}")
    # As for the latencies: fail only far beyond the target on a shared machine.
    assert len(renders) >= 60 and p95 <= 64
    # Scrolling to the end renders the last rows.
    last = page.js("return window.stb.catalog.rowKeyAt(window.stb.catalog.rowCount() - 1)")
    page.js("const t = document.getElementById('catalog-tree'); t.scrollTop = t.scrollHeight;")
    page.wait(lambda: page.js("return !!document.querySelector(`#catalog-tree .row[data-key='${arguments[0]}']`)", last), "the last row")
    assert page.js("return window.stb.catalog.reveal('bulk_19_499')")
    page.wait(lambda: page.js("return !!document.querySelector('#catalog-tree .row[data-key=bulk_19_499]')"), "the changed row")
    page.js("window.stbMetrics.applied.length = 0")
    catalog.UpdateOption(pb.catalog.UpdateOptionRequest(ref=pb.catalog.OptionRef(key="bulk_19_499"), default_value="7"),
                         metadata=md(admin_token), timeout=TIMEOUT)
    record = page.wait(lambda: (page.js("return window.stbMetrics.applied.filter(r => r.key === 'bulk_19_499')") or [None])[0], "the change")
    print(f"one live change on the {rows}-row catalog: {record['scriptMs']:.2f} ms script time; "
          f"target ≤ 16 ms: {'PASS' if record['scriptMs'] <= 16 else 'MISS'}")
    assert record["scriptMs"] <= 64
    assert page.js("return document.querySelector('#catalog-tree .row[data-key=bulk_19_499] .default').textContent") == "7"
