"""Checks of the Kubernetes manifests (services/<name>/k8s/) that need no cluster.

- every manifest is valid for Kubernetes KUBERNETES_VERSION, strictly (unknown fields
  fail), by kubernetes-validate's bundled schemas;
- each service (catalog, rules, project, gateway, stubs) and the edge has a Deployment, a
  Service, a PodDisruptionBudget and a HorizontalPodAutoscaler, which the directory's
  kustomization.yaml lists (and not the example Secret); where kubectl is installed,
  `kubectl kustomize` builds each directory;
- selectors match: the Service's and the budget's select the Deployment's pod labels,
  the autoscaler targets the Deployment; a Service's target ports and every probe's port
  are container ports; the services have gRPC probes (kubelet calls
  grpc.health.v1.Health/Check) on their service port;
- secrets: every secretKeyRef and secret volume names a Secret of a secret.example.yaml
  that has that key; the examples hold placeholders only; no secret-like variable has a
  literal value; `$(VAR)` references name a variable defined before them;
- every variable is one the service reads (names collected from its Swift configuration
  code, or from scripts/edge for the edge), its own port and host match the container,
  and every `*_ADDR` names a Service and one of its ports; the pods run as the user of
  the service's image (its Dockerfile's USER: services/Dockerfile for the Swift services);
- the stub server runs one replica (its mocks and journal are in its process), which its
  autoscaler and disruption budget keep, and its Service reaches the demo file's mocks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.33.0"
SERVICES = ("catalog", "rules", "project", "gateway", "stubs")
DEPLOYED = SERVICES + ("edge",)
PORTS = {"gateway": 50050, "catalog": 50051, "rules": 50052, "project": 50053, "stubs": 50054}
# Each service's binary (its Sources/<product> folder).
PRODUCTS = {"catalog": "catalogd", "rules": "rulesd", "project": "projectd", "gateway": "gatewayd", "stubs": "stubd"}
SECRET_EXAMPLE = "secret.example.yaml"
PLACEHOLDER = "CHANGE-ME"
SECRET_LIKE = re.compile(r"SECRET|PASSWORD|TOKEN|DATABASE_URL|ENCRYPTION_KEY|SERVICE_ACCOUNTS")


def k8s_dir(name: str) -> Path:
    return REPO / "services" / name / "k8s"


def manifest_files() -> list[Path]:
    return sorted(p for p in REPO.glob("services/*/k8s/*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources(name: str) -> dict[str, dict]:
    """The service's resources by kind (one of each; the example Secret apart)."""
    found: dict[str, dict] = {}
    for path in sorted(k8s_dir(name).glob("*.yaml")):
        if path.name in ("kustomization.yaml", SECRET_EXAMPLE):
            continue
        for doc in documents(path):
            assert doc["kind"] not in found, f"{name}: two {doc['kind']} manifests"
            found[doc["kind"]] = doc
    return found


def example_secrets() -> dict[str, dict]:
    secrets: dict[str, dict] = {}
    for path in REPO.glob(f"services/*/k8s/{SECRET_EXAMPLE}"):
        for doc in documents(path):
            assert doc["kind"] == "Secret", f"{path}: {doc['kind']}"
            secrets[doc["metadata"]["name"]] = doc
    return secrets


def container(name: str) -> dict:
    containers = resources(name)["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{name}: one container expected"
    return containers[0]


def container_ports(entry: dict) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in entry.get("ports", [])}


def resolve_port(entry: dict, port) -> int:
    ports = container_ports(entry)
    if isinstance(port, str):
        assert port in ports, f"port {port!r} is not a container port ({ports})"
        return ports[port]
    assert port in ports.values(), f"port {port} is not a container port ({ports})"
    return port


# --- what each service reads ------------------------------------------------------------

QUOTED_NAME = re.compile(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"')
PREFIXED_NAME = re.compile(r'"\\\(prefix\)(_[A-Z0-9_]+)"')
SHELL_NAME = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?-|\})")


def variables_read(name: str) -> set[str]:
    """Environment variable names the service's code reads: quoted names in its
    configuration code, and `<NAME>_...` for the service kit's prefixed ones."""
    if name == "edge":
        return set(SHELL_NAME.findall((REPO / "scripts" / "edge").read_text()))
    sources = [
        *(REPO / "Sources" / "STBService").rglob("*.swift"),
        REPO / "Sources" / "STBRPC" / "Server" / "RPCServer+Environment.swift",
        REPO / "Sources" / "STBPostgres" / "PostgresPool.swift",
        *(REPO / "Sources" / PRODUCTS[name]).rglob("*.swift"),
        *(REPO / "Sources" / f"STB{name.capitalize()}").rglob("*.swift"),
    ]
    names: set[str] = set()
    for source in sources:
        text = source.read_text()
        names |= set(QUOTED_NAME.findall(text))
        names |= {name.upper() + suffix for suffix in PREFIXED_NAME.findall(text)}
    return names


def test_variables_read_are_found():
    """The collection above finds what it must (else every env check passes vacuously)."""
    assert {"CATALOG_DATABASE_URL", "CATALOG_PORT", "STB_GATEWAY_ADDR", "LOG_LEVEL"} <= variables_read("catalog")
    assert {"GATEWAY_KEY_ENCRYPTION_KEY", "GATEWAY_PROJECT_ADDR", "GATEWAY_SERVICE_ACCOUNTS"} <= variables_read("gateway")
    assert {"RULES_CATALOG_ADDR", "RULES_SERVICE_SECRET"} <= variables_read("rules")
    assert {"PROJECT_RULES_ADDR", "PROJECT_SERVICE_SECRET"} <= variables_read("project")
    assert {"STB_EDGE_HOST", "STB_EDGE_CERT", "STB_GATEWAY_ADDR"} <= variables_read("edge")
    assert {"STUBS_FILE", "STUBS_MOCK_HOST", "STUBS_DATABASE_URL", "STUBS_PORT"} <= variables_read("stubs")
    assert "GATEWAY_DATABASE_URL" not in variables_read("catalog")


# --- tests ------------------------------------------------------------------------------


def test_there_are_manifests():
    assert len(manifest_files()) >= 5 * len(DEPLOYED)


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_manifest_is_valid_kubernetes(path: Path):
    docs = documents(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path}: {doc.get('kind')}: {error.path}: {error.message}")


@pytest.mark.parametrize("name", DEPLOYED)
def test_each_service_has_its_resources(name):
    found = resources(name)
    assert set(found) == {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
    kustomization = yaml.safe_load((k8s_dir(name) / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    files = {p.name for p in k8s_dir(name).glob("*.yaml")} - {"kustomization.yaml", SECRET_EXAMPLE}
    assert listed == files, "kustomization.yaml must list every manifest but the example Secret"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl")
@pytest.mark.parametrize("name", DEPLOYED)
def test_kustomization_builds(name):
    result = subprocess.run(["kubectl", "kustomize", str(k8s_dir(name))], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc)
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]


@pytest.mark.parametrize("name", DEPLOYED)
def test_selectors_and_ports_match(name):
    found = resources(name)
    deployment = found["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict) -> bool:
        return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())

    assert selects(deployment["spec"]["selector"]["matchLabels"])
    service = found["Service"]
    assert selects(service["spec"]["selector"]), "the Service selects no pod of the Deployment"
    assert selects(found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"])
    target = found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    entry = container(name)
    for port in service["spec"]["ports"]:
        resolve_port(entry, port.get("targetPort", port["port"]))
    if name in PORTS:
        assert service["metadata"]["name"] == name
        assert [p["port"] for p in service["spec"]["ports"]][0] == PORTS[name]
        if name != "stubs":
            assert [p["port"] for p in service["spec"]["ports"]] == [PORTS[name]]


@pytest.mark.parametrize("name", DEPLOYED)
def test_probes(name):
    entry = container(name)
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = entry.get(kind)
        assert probe, f"{name}: no {kind}"
        if name in PORTS:
            assert "grpc" in probe, f"{name}: {kind} is not a gRPC health probe"
            assert resolve_port(entry, probe["grpc"]["port"]) == PORTS[name]
            assert probe["grpc"].get("service", "") == "", "Check of the whole server"
        else:
            handler = probe.get("grpc") or probe.get("tcpSocket") or probe.get("httpGet")
            assert handler, f"{name}: {kind} has no handler"
            resolve_port(entry, handler["port"])


@pytest.mark.parametrize("name", DEPLOYED)
def test_resources_are_bounded(name):
    limits = container(name)["resources"]
    for key in ("cpu", "memory"):
        assert key in limits["requests"] and key in limits["limits"], f"{name}: {key}"


def test_example_secrets_hold_placeholders_only():
    secrets = example_secrets()
    assert {"stb-catalog", "stb-rules", "stb-project", "stb-gateway", "stb-stubs", "stb-edge-tls"} <= set(secrets)
    for secret_name, secret in secrets.items():
        assert "data" not in secret, f"{secret_name}: use stringData placeholders"
        assert secret["stringData"], secret_name
        for key, value in secret["stringData"].items():
            assert value == PLACEHOLDER, f"{secret_name}.{key} is not the placeholder"


@pytest.mark.parametrize("name", DEPLOYED)
def test_secret_references(name):
    secrets = example_secrets()
    pod = resources(name)["Deployment"]["spec"]["template"]["spec"]
    entry = container(name)
    for variable in entry.get("env", []):
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] in secrets, f"{variable['name']}: no example Secret {ref['name']}"
            assert ref["key"] in secrets[ref["name"]]["stringData"], f"{variable['name']}: {ref['name']} has no key {ref['key']}"
            assert not ref.get("optional"), f"{variable['name']}: a secret must not be optional"
    mounts = {m["name"]: m["mountPath"] for m in entry.get("volumeMounts", [])}
    env = {v["name"]: v.get("value") for v in entry.get("env", [])}
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            secret = secrets.get(volume["secret"]["secretName"])
            assert secret, f"volume {volume['name']}: no example Secret {volume['secret']['secretName']}"
            assert volume["name"] in mounts, f"volume {volume['name']} is not mounted"
            # A variable naming a file of the mount names one of the Secret's keys.
            for value in env.values():
                if value and value.startswith(mounts[volume["name"]] + "/"):
                    key = value[len(mounts[volume["name"]]) + 1:]
                    assert key in secret["stringData"], f"{value}: the Secret has no key {key}"


@pytest.mark.parametrize("name", DEPLOYED)
def test_environment_is_what_the_service_reads(name):
    entry = container(name)
    read = variables_read(name)
    defined: list[str] = []
    referenced: set[str] = set()
    for variable in entry["env"]:
        key = variable["name"]
        value = variable.get("value")
        if value is not None:
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value):
                assert ref in defined, f"{key}: $({ref}) is not defined before it"
                referenced.add(ref)
            if SECRET_LIKE.search(key):
                literal = re.sub(r"\$\([A-Za-z0-9_]+\)", "", value)
                assert re.fullmatch(r"[a-z:,]*", literal), f"{key} has a literal value: use a Secret"
        defined.append(key)
    assert len(defined) == len(set(defined)), f"{name}: a variable is set twice"
    for key in defined:
        assert key in read or key in referenced, f"{name} does not read {key}"


@pytest.mark.parametrize("name", SERVICES)
def test_service_listens_where_the_probes_look(name):
    env = {v["name"]: v.get("value") for v in container(name)["env"]}
    prefix = name.upper()
    assert env[f"{prefix}_HOST"] == "0.0.0.0"
    assert int(env[f"{prefix}_PORT"]) == PORTS[name] == container_ports(container(name))["grpc"]
    assert env[f"{prefix}_MIGRATIONS_DIR"] == f"/app/services/{name}/migrations"
    assert f"{prefix}_DATABASE_URL" in env, "the database URL comes from the Secret"


@pytest.mark.parametrize("name", DEPLOYED)
def test_addresses_name_services(name):
    services = {
        resources(other)["Service"]["metadata"]["name"]: [p["port"] for p in resources(other)["Service"]["spec"]["ports"]]
        for other in DEPLOYED
    }
    for variable in container(name)["env"]:
        if variable["name"].endswith("_ADDR"):
            host, _, port = variable["value"].rpartition(":")
            assert host in services, f"{variable['name']}: no Service {host}"
            assert int(port) in services[host], f"{variable['name']}: {host} has no port {port}"


@pytest.mark.parametrize("name", DEPLOYED)
def test_pods_run_as_the_image_user(name):
    dockerfile = (REPO / "services" / ("edge/Dockerfile" if name == "edge" else "Dockerfile")).read_text()
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", dockerfile, re.MULTILINE)
    assert users, f"{name}: the Dockerfile has no numeric USER"
    uid, gid = map(int, users[-1])
    context = resources(name)["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True
    assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)
    assert container(name)["securityContext"]["allowPrivilegeEscalation"] is False


def test_stubs_runs_one_replica_and_reaches_the_demo_mocks():
    """stubd's mocks, their faults and its journal are in its process: one replica, never
    two at once (Recreate), held at one by the autoscaler, and a budget that lets a drain
    take it; its Service reaches the demo stub file's mocks, on ports no real service
    uses, and the image's demo file is the one it loads."""
    found = resources("stubs")
    deployment = found["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    hpa = found["HorizontalPodAutoscaler"]["spec"]
    assert hpa["minReplicas"] == hpa["maxReplicas"] == 1
    assert found["PodDisruptionBudget"]["spec"].get("maxUnavailable") == 1
    env = {v["name"]: v.get("value") for v in container("stubs")["env"]}
    assert env["STUBS_MOCK_HOST"] == "0.0.0.0"
    assert env["STUBS_FILE"] == "/app/services/stubs/demo-stubs.json"
    demo = yaml.safe_load((REPO / "services" / "stubs" / "demo-stubs.json").read_text())
    service_ports = [p["port"] for p in found["Service"]["spec"]["ports"]]
    for mock in demo["mocks"]:
        assert mock["port"] in service_ports, f"{mock['service']}'s mock port is not in the Service"
        assert mock["port"] not in PORTS.values(), f"{mock['service']}'s mock takes a service's port"
