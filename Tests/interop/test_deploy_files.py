"""Checks of the deployment files that need no Docker engine.

docker-compose.yml (root), services/Dockerfile (the one recipe of every Swift service,
given SERVICE, PRODUCT, PREFIX, PORT and RUNTIME_PACKAGES as build arguments by compose),
services/edge/Dockerfile, .dockerignore and the Postgres init scripts
(services/postgres/init/):

- `docker-compose config -q` accepts the compose file (Compose v1 from Debian's
  `docker-compose` package, or the v2 `docker compose` plugin when that is what the
  machine has; neither needs an engine for `config`). Skipped when neither is installed.
- every service with a `build` has its Dockerfile, and every COPY/ADD source of every
  image (the Dockerfile read with that service's build arguments) exists in the build
  context and is not excluded by .dockerignore;
- the runtime stage of each service image is debian:bookworm-slim (not a Swift image),
  with the C runtime libraries, a non-root user and an ENTRYPOINT; the build stage is
  an official swift:6.x-bookworm image; the entry point is the service's own binary and
  its migrations folder holds the service's own migrations; the runtime packages hold
  every C library the built binary needs (readelf of .build/debug/<product>, mapped to
  Debian packages by dpkg);
- the stub server (stubd) is packaged like the others: its image, with libyaml, and its
  compose service with its database, port and the demo stub file's mock ports;
- the edge (services/edge/Dockerfile: nghttpx run by scripts/edge, nothing compiled) is
  one debian:bookworm-slim stage with Debian's nghttp2 packages and the script and
  template it runs, and compose publishes it on 8080 and 8443 in front of the services;
- the init scripts create the five service databases; when a Postgres admin URL is
  known (STB_PG_ADMIN_URL, from `scripts/db env`), the SQL also runs against it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERIGNORE = REPO / ".dockerignore"
INIT_DIR = REPO / "services" / "postgres" / "init"
EDGE_DOCKERFILE = REPO / "services" / "edge" / "Dockerfile"
SERVICE_DOCKERFILE = REPO / "services" / "Dockerfile"
SERVICES = ("catalog", "project", "rules", "gateway", "stubs")
# Each service's binary (SwiftPM product) and gRPC port.
PRODUCTS = {"catalog": "catalogd", "project": "projectd", "rules": "rulesd", "gateway": "gatewayd", "stubs": "stubd"}
PORTS = {"gateway": 50050, "catalog": 50051, "rules": 50052, "project": 50053, "stubs": 50054}
# The C libraries every service binary links (nghttp2, protobuf-c, libpq, RE2), by Debian package.
RUNTIME_PACKAGES = ("libnghttp2-14", "libprotobuf-c1", "libpq5", "libre2-9")


# --- compose -------------------------------------------------------------------------


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def load_compose() -> dict:
    with COMPOSE_FILE.open() as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), (
        "docker-compose.yml has no services mapping"
    )
    return data


def build_of(service: dict) -> tuple[Path, Path] | None:
    """(context, Dockerfile) of a service with a build section, else None."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        context, dockerfile = build, "Dockerfile"
    else:
        context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    context_path = (REPO / context).resolve()
    return context_path, (context_path / dockerfile).resolve()


def test_compose_config_is_valid():
    command = compose_command()
    if command is None:
        pytest.skip(
            "neither docker-compose nor the docker compose plugin is installed "
            "(Debian: apt-get install docker-compose)"
        )
    env = dict(os.environ)
    # Prove that no engine is needed: point the client at a socket that does not exist.
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    env.pop("POSTGRES_PASSWORD", None)
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{' '.join(command)} config -q failed:\n{result.stderr}"


def test_compose_services():
    services = load_compose()["services"]
    assert "postgres" in services and "catalog" in services

    postgres = services["postgres"]
    assert re.fullmatch(r"postgres:15(\.\d+)?(-bookworm)?", postgres["image"])
    assert "pg_isready" in " ".join(map(str, postgres["healthcheck"]["test"]))
    mounts = [str(v) for v in postgres.get("volumes", [])]
    init_mounts = [m for m in mounts if ":/docker-entrypoint-initdb.d" in m]
    assert init_mounts, "the init scripts are not mounted at /docker-entrypoint-initdb.d"
    for mount in init_mounts:
        source, _, options = mount.partition(":/docker-entrypoint-initdb.d")
        assert (REPO / source).resolve() == INIT_DIR, f"init mount source is {source}"
        assert options.lstrip("/").endswith(":ro"), f"init mount {mount} is not read-only"

    catalog = services["catalog"]
    assert catalog["depends_on"]["postgres"]["condition"] == "service_healthy"
    environment = catalog["environment"]
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    assert (
        environment["CATALOG_DATABASE_URL"] == "postgresql://catalog:catalog@postgres:5432/catalog"
    )
    assert "50051:50051" in [str(p) for p in catalog["ports"]]


def test_every_build_has_its_dockerfile():
    builds = {
        name: build_of(service)
        for name, service in load_compose()["services"].items()
        if build_of(service) is not None
    }
    assert builds, "no service in docker-compose.yml has a build section"
    for name, (context, dockerfile) in builds.items():
        assert context.is_dir(), f"{name}: build context {context} is missing"
        assert dockerfile.is_file(), f"{name}: Dockerfile {dockerfile} is missing"


# --- Dockerfiles ---------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def parse_dockerfile(path: Path, build_args: dict[str, str] | None = None) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined and, as Docker
    does, each stage's ARG (from `build_args`, else its default) and ENV values
    substituted into the instructions after them (RUN: in the shell's place)."""
    build_args = build_args or {}
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and pending):
            continue  # comments (and blank lines inside a continued instruction)
        if not stripped:
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, args = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    assert not pending, f"{path}: the last instruction ends in a line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    scope: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--platform")]
            base = substitute(words[0], {**global_args, **build_args})
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
            scope = {}
        elif not stages:
            assert instruction.keyword == "ARG", f"{path}:{instruction.line}: before FROM"
            key, _, default = instruction.args.partition("=")
            global_args[key.strip()] = default.strip().strip('"')
        elif instruction.keyword == "ARG":
            key, has_default, default = instruction.args.partition("=")
            key = key.strip()
            fallback = default.strip().strip('"') if has_default else global_args.get(key, "")
            scope[key] = build_args.get(key, fallback)
            stages[-1].instructions.append(instruction)
        else:
            if instruction.keyword not in ("ENTRYPOINT", "CMD"):  # exec forms are not expanded
                instruction = Instruction(
                    instruction.keyword, substitute(instruction.args, scope, lenient=True), instruction.line)
            if instruction.keyword == "ENV":
                for word in shlex.split(instruction.args):
                    key, _, value = word.partition("=")
                    scope[key] = value
            stages[-1].instructions.append(instruction)
    assert stages, f"{path} has no FROM"
    return global_args, stages


def substitute(text: str, args: dict[str, str], lenient: bool = False) -> str:
    """`${NAME}` and `$NAME` replaced by their values; with `lenient`, names without one
    are left as they are (the shell's own variables in a RUN)."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if lenient and name not in args:
            return match.group(0)
        assert name in args, f"${name} has no default"
        return args[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def copy_sources(instruction: Instruction) -> list[str] | None:
    """Context sources of a COPY/ADD, or None when it copies from a stage or image."""
    args, flags = instruction.args.strip(), []
    while args.startswith("--"):
        flag, _, args = args.partition(" ")
        flags.append(flag)
        args = args.strip()
    if any(flag.startswith("--from=") for flag in flags):
        return None
    words = json.loads(args) if args.startswith("[") else shlex.split(args)
    assert len(words) >= 2, f"line {instruction.line}: {instruction.keyword} needs a source"
    return words[:-1]


@dataclass
class Image:
    """An image as compose builds it: its Dockerfile, context and build arguments."""
    name: str
    dockerfile: Path
    context: Path
    args: dict[str, str]

    def stages(self) -> list[Stage]:
        return parse_dockerfile(self.dockerfile, self.args)[1]


def images() -> list[Image]:
    """The compose builds, plus every services/*/Dockerfile that no compose service builds
    (with no build arguments; their documented context is the repository root)."""
    found: list[Image] = []
    for name, service in load_compose()["services"].items():
        build = build_of(service)
        if build is not None:
            args = service["build"].get("args", {}) if isinstance(service["build"], dict) else {}
            if isinstance(args, list):
                args = dict(item.split("=", 1) for item in args)
            found.append(Image(name, build[1], build[0], {k: str(v) for k, v in args.items()}))
    built = {image.dockerfile for image in found}
    for path in sorted((REPO / "services").glob("*/Dockerfile")):
        if path.resolve() not in built:
            found.append(Image(str(path.relative_to(REPO)), path.resolve(), REPO, {}))
    return sorted(found, key=lambda image: image.name)


def dockerfiles() -> list[tuple[Path, Path]]:
    """(Dockerfile, build context) pairs of the images."""
    return sorted({(image.dockerfile, image.context) for image in images()}, key=lambda pair: str(pair[0]))


def ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """The .dockerignore rules as (is_exception, regex), in order."""
    if not DOCKERIGNORE.exists():
        return []
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((exception, re.compile(regex + r"\Z")))
    return rules


def ignored(relative: str, rules) -> bool:
    """Whether .dockerignore leaves the path (or one of its parents) out of the context."""
    parts = Path(relative).parts
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        excluded = False
        for exception, regex in rules:
            if regex.match(prefix):
                excluded = not exception
        if excluded:
            return True
    return False


DOCKERFILES = dockerfiles()
IMAGES = images()
IMAGE_IDS = [image.name for image in IMAGES]
# The images built from Swift sources (every one but the edge's).
SWIFT_IMAGES = [image for image in IMAGES if image.dockerfile != EDGE_DOCKERFILE.resolve()]
SWIFT_IDS = [image.name for image in SWIFT_IMAGES]


def image_of(name: str) -> Image:
    found = [image for image in IMAGES if image.name == name]
    assert found, f"no compose service {name} with a build"
    return found[0]


def test_there_are_dockerfiles():
    assert DOCKERFILES, "no Dockerfile found under services/"
    assert {image.name for image in SWIFT_IMAGES} == set(SERVICES)


def test_the_swift_services_share_one_recipe():
    """One Dockerfile for every Swift service, told apart by build arguments only: no
    per-service copies to drift apart."""
    for image in SWIFT_IMAGES:
        assert image.dockerfile == SERVICE_DOCKERFILE.resolve(), f"{image.name} builds {image.dockerfile}"
        assert image.args.get("SERVICE") == image.name
        assert image.args.get("PRODUCT") == PRODUCTS[image.name]
        assert image.args.get("PREFIX") == image.name.upper()
        assert image.args.get("PORT") == str(PORTS[image.name])
    leftovers = [p for p in (REPO / "services").glob("*/Dockerfile") if p.resolve() != EDGE_DOCKERFILE.resolve()]
    assert not leftovers, f"per-service copies of the recipe: {leftovers}"


@pytest.mark.parametrize("image", IMAGES, ids=IMAGE_IDS)
def test_copy_sources_exist(image: Image):
    dockerfile, context = image.dockerfile, image.context
    stages = image.stages()
    rules = ignore_patterns() if context == REPO else []
    problems = []
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword not in ("COPY", "ADD"):
                continue
            for source in copy_sources(instruction) or []:
                relative = os.path.normpath(source.lstrip("/")) if source.strip("/.") else "."
                matches = list(context.glob(relative)) if relative != "." else [context]
                if not matches:
                    problems.append(f"line {instruction.line}: {source} does not exist in {context}")
                    continue
                for match in matches:
                    rel = os.path.relpath(match, context)
                    if rel != "." and ignored(rel, rules):
                        problems.append(
                            f"line {instruction.line}: {source} is excluded by .dockerignore"
                        )
                    elif match.is_dir() and not any(p.is_file() for p in match.rglob("*")):
                        # Git keeps no empty directory: a fresh clone would not have it.
                        problems.append(
                            f"line {instruction.line}: {source} holds no file (add one, "
                            "or a .gitkeep, so a clean checkout has the directory)"
                        )
    assert not problems, f"{dockerfile}:\n" + "\n".join(problems)


def test_dockerignore_keeps_build_trees_out():
    rules = ignore_patterns()
    assert rules, ".dockerignore is missing or empty"
    for path in (".build", ".build-static/release/catalogd", ".local/postgres", ".git/HEAD",
                 "Tests/interop/__pycache__/x.pyc"):
        assert ignored(path, rules), f".dockerignore does not exclude {path}"
    for path in ("Package.swift", "Sources/catalogd/main.swift", "services/catalog/migrations",
                 "Protos", "scripts/db"):
        assert not ignored(path, rules), f".dockerignore excludes {path}"


def swift_version(image: str) -> tuple[int, ...] | None:
    match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?swift:(\d+)\.(\d+)(?:\.(\d+))?-bookworm", image)
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


@pytest.mark.parametrize("image", SWIFT_IMAGES, ids=SWIFT_IDS)
def test_stages(image: Image):
    stages = image.stages()
    assert len(stages) >= 2, "expected a multi-stage build (build, then runtime)"
    build, runtime = stages[0], stages[-1]

    version = swift_version(build.base)
    assert version is not None, f"build stage is {build.base}, not an official swift:X.Y-bookworm"
    assert version >= (6, 2), (
        f"build stage Swift {version}: Package.swift needs 6.2+ (NonisolatedNonsendingByDefault)"
    )
    build_runs = " ".join(i.args for i in build.instructions if i.keyword == "RUN")
    assert "--static-swift-stdlib" in build_runs

    base = runtime.base.split("@")[0]
    assert base in ("debian:bookworm-slim", "docker.io/library/debian:bookworm-slim"), (
        f"runtime stage is {runtime.base}"
    )
    assert not base.split("/")[-1].startswith("swift"), "runtime stage is a Swift image"

    keywords = [i.keyword for i in runtime.instructions]
    runtime_runs = " ".join(i.args for i in runtime.instructions if i.keyword == "RUN")
    for package in (*RUNTIME_PACKAGES, "ca-certificates"):
        assert re.search(rf"(?<![\w.+-]){re.escape(package)}(?![\w.+-])", runtime_runs), (
            f"runtime stage does not install {package}"
        )
    assert not re.search(r"\S+-dev\b", runtime_runs), "runtime stage installs -dev packages"

    users = [i.args.split(":")[0] for i in runtime.instructions if i.keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "runtime stage runs as root"
    assert "ENTRYPOINT" in keywords or "CMD" in keywords


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.instructions:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def image_files(image: Image) -> set[str]:
    """The paths in the runtime stage's file system that COPY puts there from the build
    context (a directory's files, less what .dockerignore leaves out)."""
    rules = ignore_patterns() if image.context == REPO else []
    paths: set[str] = set()
    for instruction in image.stages()[-1].instructions:
        if instruction.keyword != "COPY":
            continue
        sources = copy_sources(instruction)
        if sources is None:
            continue
        destination = shlex.split(instruction.args)[-1].rstrip("/")
        for source in sources:
            root = image.context / os.path.normpath(source.lstrip("/"))
            if root.is_file():
                paths.add(destination if len(sources) == 1 and not instruction.args.rstrip().endswith("/")
                          else f"{destination}/{root.name}")
                continue
            for file in root.rglob("*"):
                relative = os.path.relpath(file, image.context)
                if file.is_file() and not ignored(relative, rules):
                    paths.add(f"{destination}/{file.relative_to(root)}")
    return paths


def entry_binary(image: Image) -> str:
    """The file the ENTRYPOINT runs, following a symbolic link a RUN makes
    (`ln -s TARGET LINK`)."""
    runtime = image.stages()[-1]
    entry = [json.loads(i.args) for i in runtime.instructions if i.keyword == "ENTRYPOINT"]
    assert entry, "no ENTRYPOINT"
    path = entry[-1][0]
    for instruction in runtime.instructions:
        if instruction.keyword == "RUN":
            for target, link in re.findall(r"ln -s(?:f)? (\S+) (\S+)", instruction.args):
                if link.strip('"') == path:
                    path = target.strip('"')
    return path


def test_catalog_image():
    image = image_of("catalog")
    runtime = image.stages()[-1]
    env = env_of(runtime)
    assert env.get("CATALOG_HOST") == "0.0.0.0"
    assert env.get("CATALOG_PORT") == "50051"
    assert env.get("CATALOG_MIGRATIONS_DIR") == "/app/services/catalog/migrations"
    exposed = " ".join(i.args for i in runtime.instructions if i.keyword == "EXPOSE")
    assert "50051" in exposed.split()
    workdirs = [i.args for i in runtime.instructions if i.keyword == "WORKDIR"]
    assert workdirs and workdirs[-1] == "/app"
    files = image_files(image)
    for wanted in ("migrations/", "seeds/", "seed.schema.json"):
        assert any(f.startswith(f"/app/services/catalog/{wanted}") for f in files), f"{wanted} is not copied"


@pytest.mark.parametrize("name", SERVICES)
def test_service_image_runs_its_own_binary_and_migrations(name):
    """The build stage builds the service's product, the runtime stage copies it to where
    the ENTRYPOINT runs it, with the service's own migrations where
    `<NAME>_MIGRATIONS_DIR` points and it listening on all interfaces on its port (an
    image holding another service's binary or migrations, or none, would not start)."""
    image = image_of(name)
    product = PRODUCTS[name]
    build, runtime = image.stages()[0], image.stages()[-1]
    build_runs = " ".join(i.args for i in build.instructions if i.keyword == "RUN")
    assert re.search(rf'--product "?{product}"?(\s|$)', build_runs), f"the build stage does not build {product}"
    assert re.search(rf'"?/out/{product}"?(\s|$)', build_runs), f"the build stage does not install /out/{product}"
    copies = [shlex.split(i.args) for i in runtime.instructions if i.keyword == "COPY"]
    assert ["--from=build", f"/out/{product}", f"/app/{product}"] in copies, copies
    assert entry_binary(image) == f"/app/{product}"
    env = env_of(runtime)
    prefix = name.upper()
    assert env.get(f"{prefix}_HOST") == "0.0.0.0"
    assert env.get(f"{prefix}_PORT") == str(PORTS[name])
    assert str(PORTS[name]) in " ".join(i.args for i in runtime.instructions if i.keyword == "EXPOSE").split()
    migrations = env.get(f"{prefix}_MIGRATIONS_DIR")
    assert migrations == f"/app/services/{name}/migrations"
    files = image_files(image)
    wanted = sorted(p.name for p in (REPO / "services" / name / "migrations").glob("*.sql"))
    assert wanted, f"services/{name}/migrations has no migration"
    assert sorted(f.rpartition("/")[2] for f in files if f.startswith(migrations + "/")) == wanted


def needed_packages(binary: Path) -> dict[str, str]:
    """The Debian packages of the shared C libraries `binary` needs (readelf's NEEDED,
    found with ldconfig, owned per dpkg), by library; the Swift runtime's own libraries
    (linked statically into the image's binary) are left out."""
    dynamic = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True).stdout
    libraries = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)
    cache = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    packages: dict[str, str] = {}
    for library in libraries:
        match = re.search(rf"^\s*{re.escape(library)} \(.*x86-64.*\) => (\S+)$", cache, re.MULTILINE)
        if match is None:
            continue  # not a system library: the Swift runtime
        owner = subprocess.run(["dpkg", "-S", match.group(1)], capture_output=True, text=True)
        if owner.returncode != 0:
            owner = subprocess.run(["dpkg", "-S", os.path.realpath(match.group(1))], capture_output=True, text=True)
        assert owner.returncode == 0, f"{library}: no Debian package owns {match.group(1)}"
        packages[library] = owner.stdout.split(":")[0]
    return packages


@pytest.mark.skipif(not shutil.which("readelf") or not shutil.which("dpkg"), reason="needs readelf and dpkg")
@pytest.mark.parametrize("name", SERVICES)
def test_runtime_packages_cover_what_the_binary_links(name):
    """Every C library the service's binary links (as built here: .build/debug, the same
    Debian 12 libraries as the bookworm image) comes from a package the runtime stage
    installs (or one debian:bookworm-slim has: libc6, libgcc-s1)."""
    binary = REPO / ".build" / "debug" / PRODUCTS[name]
    if not binary.is_file():
        pytest.skip(f"{binary} is not built (swift build --product {PRODUCTS[name]})")
    runtime_runs = " ".join(i.args for i in image_of(name).stages()[-1].instructions if i.keyword == "RUN")
    installed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", runtime_runs))
    missing = {library: package for library, package in needed_packages(binary).items()
               if package not in installed and package not in ("libc6", "libgcc-s1")}
    assert not missing, f"the {name} image lacks the packages of {missing}"


def test_stubs_image_and_compose():
    """stubd's image (with libyaml for YAML stub files, its schema and demo stub files)
    and its compose service: its own database, the admin port, and the demo file's mock
    ports, none of them a port of the real services."""
    image = image_of("stubs")
    runtime = image.stages()[-1]
    runtime_runs = " ".join(i.args for i in runtime.instructions if i.keyword == "RUN")
    assert re.search(r"(?<![\w.+-])libyaml-0-2(?![\w.+-])", runtime_runs), "the stubs image does not install libyaml-0-2"
    files = image_files(image)
    for wanted in ("stub.schema.json", "demo-stubs.json", "demo-stubs.yaml"):
        assert f"/app/services/stubs/{wanted}" in files, f"{wanted} is not copied"

    stubs = load_compose()["services"]["stubs"]
    environment = stubs["environment"]
    assert environment["STUBS_DATABASE_URL"] == "postgresql://stubs:stubs@postgres:5432/stubs"
    assert environment["STUBS_HOST"] == "0.0.0.0" and environment["STUBS_MOCK_HOST"] == "0.0.0.0"
    assert stubs["depends_on"]["postgres"]["condition"] == "service_healthy"
    ports = [str(p) for p in stubs["ports"]]
    assert "50054:50054" in ports
    demo_file = re.fullmatch(r"\$\{\w+:?-(.*)\}", environment["STUBS_FILE"]).group(1)
    assert demo_file == "/app/services/stubs/demo-stubs.json" and demo_file in files
    demo = json.loads((REPO / "services" / "stubs" / "demo-stubs.json").read_text())
    for mock in demo["mocks"]:
        assert mock["port"] not in PORTS.values(), f"{mock['service']}'s mock takes a service's port"
        assert f"{mock['port']}:{mock['port']}" in ports, f"{mock['service']}'s mock port is not published"


def test_project_image_and_compose():
    """projectd's compose service: its database, the catalog and rules it depends on, and
    the gateway where its service account signs in with a secret from the environment."""
    services = load_compose()["services"]
    project = services["project"]
    assert build_of(project) == (REPO, SERVICE_DOCKERFILE.resolve())
    environment = project["environment"]
    assert environment["PROJECT_DATABASE_URL"] == "postgresql://project:project@postgres:5432/project"
    assert environment["PROJECT_CATALOG_ADDR"] == "catalog:50051"
    assert environment["PROJECT_RULES_ADDR"] == "rules:50052"
    assert environment["STB_GATEWAY_ADDR"] == "gateway:50050"
    assert environment["PROJECT_SERVICE_SECRET"] == "${STB_PROJECT_SERVICE_SECRET:-}"
    assert "project:${STB_PROJECT_SERVICE_SECRET:-}" in services["gateway"]["environment"]["GATEWAY_SERVICE_ACCOUNTS"]
    assert project["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert {"catalog", "rules", "gateway"} <= set(project["depends_on"])
    assert "50053:50053" in [str(p) for p in project["ports"]]


def test_edge_image():
    """Debian's nghttpx, nghttpd and openssl on bookworm-slim, running scripts/edge with
    the template as a non-root user, listening on all interfaces inside the container."""
    assert (EDGE_DOCKERFILE.resolve(), REPO) in DOCKERFILES
    _, stages = parse_dockerfile(EDGE_DOCKERFILE)
    assert len(stages) == 1, "the edge compiles nothing: one stage"
    runtime = stages[0]
    assert runtime.base.split("@")[0] in ("debian:bookworm-slim", "docker.io/library/debian:bookworm-slim")
    runs = " ".join(i.args for i in runtime.instructions if i.keyword == "RUN")
    for package in ("nghttp2-proxy", "nghttp2-server", "openssl", "ca-certificates"):
        assert re.search(rf"(?<![\w.+-]){re.escape(package)}(?![\w.+-])", runs), (
            f"the edge image does not install {package}")
    assert "1.52.0-1+deb12u3" in runs, "the nghttp2 security floor is not checked"
    copies = {shlex.split(i.args)[0]: shlex.split(i.args)[-1]
              for i in runtime.instructions if i.keyword == "COPY"}
    assert copies.get("scripts/edge") == "/app/scripts/edge"
    assert copies.get("services/edge/nghttpx.conf.in") == "/app/services/edge/nghttpx.conf.in"
    env = env_of(runtime)
    assert env.get("STB_EDGE_HOST") == "0.0.0.0"
    assert env.get("STB_EDGE_HTTP_PORT") == "8080" and env.get("STB_EDGE_TLS_PORT") == "8443"
    assert env.get("STB_EDGE_DIR") == "/app/.local/edge"
    exposed = " ".join(i.args for i in runtime.instructions if i.keyword == "EXPOSE").split()
    assert "8080" in exposed and "8443" in exposed
    users = [i.args.split(":")[0] for i in runtime.instructions if i.keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the edge runs as root"
    entrypoints = [i.args for i in runtime.instructions if i.keyword == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["/app/scripts/edge"]
    # The template and the script it is filled by are in the repository.
    assert (REPO / "scripts" / "edge").is_file() and os.access(REPO / "scripts" / "edge", os.X_OK)
    assert (REPO / "services" / "edge" / "nghttpx.conf.in").is_file()


def test_compose_edge():
    services = load_compose()["services"]
    edge = services["edge"]
    assert build_of(edge) == (REPO, EDGE_DOCKERFILE.resolve())
    ports = [str(p) for p in edge["ports"]]
    assert "8080:8080" in ports and "8443:8443" in ports
    environment = edge["environment"]
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    # Each backend is a compose service on its own port.
    for variable, service in (("STB_CATALOG_ADDR", "catalog"), ("STB_RULES_ADDR", "rules"),
                              ("STB_PROJECT_ADDR", "project")):
        host, _, port = environment[variable].rpartition(":")
        assert host == service, f"{variable} names {host}, not the {service} service"
        assert f"{port}:{port}" in [str(p) for p in services[service]["ports"]]
        assert service in edge["depends_on"]
    mounts = [str(v) for v in edge.get("volumes", [])]
    assert any(m.endswith(":/app/.local/edge") for m in mounts), "the edge's certificate is not kept in a volume"


# --- Postgres init scripts -----------------------------------------------------------


def init_scripts() -> list[Path]:
    return sorted(p for p in INIT_DIR.iterdir() if p.suffix in (".sql", ".sh"))


def test_init_scripts_create_every_service_database():
    scripts = init_scripts()
    assert scripts, f"no .sql or .sh script in {INIT_DIR}"
    text = "\n".join(p.read_text() for p in scripts)
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    assert re.search(r"CREATE\s+ROLE", code, re.I) and re.search(r"\bLOGIN\b", code, re.I)
    assert re.search(r"CREATE\s+DATABASE", code, re.I)
    for name in SERVICES:
        assert re.search(rf"'{name}'|\b{name}\b", code), f"init scripts do not name {name}"


def psql_binary() -> str | None:
    for candidate in ("/usr/lib/postgresql/15/bin/psql", shutil.which("psql")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def test_init_sql_runs_against_postgres():
    """The SQL is idempotent: against the scripts/db cluster (which already has these
    roles and databases) it runs without error and leaves each database owned by its
    role."""
    admin_url = os.environ.get("STB_PG_ADMIN_URL")
    psql = psql_binary()
    if not admin_url or not psql:
        pytest.skip("no STB_PG_ADMIN_URL (eval \"$(scripts/db env)\") or no psql")
    for script in init_scripts():
        if script.suffix != ".sql":
            continue
        result = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", admin_url, "-f", str(script)],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, f"{script.name}:\n{result.stderr}"
    names = ",".join(f"'{n}'" for n in SERVICES)
    result = subprocess.run(
        [psql, "-X", "-At", "-d", admin_url, "-c",
         "SELECT d.datname, pg_get_userbyid(d.datdba), r.rolcanlogin FROM pg_database d "
         f"JOIN pg_roles r ON r.rolname = d.datname WHERE d.datname IN ({names}) ORDER BY 1"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    rows = [line.split("|") for line in result.stdout.split()]
    assert rows == [[n, n, "t"] for n in sorted(SERVICES)]
