"""Build the Go tools fleet's tests and demo run, from source, cached by version.

Kubernetes, etcd, kwok, kustomize, helm, the ``flux`` CLI, Prometheus, the distribution
registry, sops and age are built through the Go module proxy with the machine's own Go
configuration. Each tool lands in
``<cache>/bin/<tool>-<version>/`` and is rebuilt only when a binary is missing, so a warm
cache costs nothing.

Flux's source-controller and kustomize-controller (``FLUX_TOOLS``) are built the same way
for the benchmarks only: ``python -m fleet.localkube.toolchain flux-controllers``
(``make flux-bin``). They are not part of the default set; the ``flux`` CLI is.

This module uses the standard library only: ``make`` runs it before anything else is
installed (``python3 -m fleet.localkube.toolchain``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from fleet import tools

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
KUSTOMIZE_VERSION = "v5.8.1"
# Helm 3, not 4: Helm 4 installs with server-side apply under its own field manager, which
# contends with the agent's field manager on objects both touch; Helm 3's three-way merge
# is also what Flux's helm-controller uses, so releases behave as Flux users expect.
HELM_VERSION = "v3.20.2"
# The CNCF distribution registry, sops and age: a real OCI registry and real secret
# encryption for the source tests. None of their go.mods has replace directives and
# each says `go` <= 1.26 (age's `toolchain go1.27.0` line is only a preference).
REGISTRY_VERSION = "v3.1.2"
SOPS_VERSION = "v3.13.3"
AGE_VERSION = "v1.3.2"
# The newest Flux controllers whose go.mod accepts this machine's Go 1.26: v1.10.x of both
# says `go 1.27.0`, v1.9.6 says `go 1.26.0`.
FLUX_SOURCE_CONTROLLER_VERSION = "v1.9.6"
FLUX_KUSTOMIZE_CONTROLLER_VERSION = "v1.9.6"
# Prometheus 3.x is published to the module proxy as v0.3xx (3.16.0 is v0.316.0).
PROMETHEUS_VERSION = "v0.316.0"
# The flux CLI is the compatibility oracle of the Flux objects the agent serves. v2.9.5's
# go.mod says `go 1.26.0`.
FLUX_CLI_VERSION = "v2.9.5"


def cache_dir() -> Path:
    """Root of fleet's build cache: ``$FLEET_CACHE_DIR``, else ``$XDG_CACHE_HOME/fleet``."""
    return tools.cache_dir()


def put_on_path(tools_: tuple[Tool, ...] | None = None) -> None:
    """Prepend the built kustomize and helm (or ``tools_``) to this process's PATH, so
    fleet and every process it starts find them as production finds them: on PATH."""
    chosen = tools_ if tools_ is not None else (KUSTOMIZE, HELM)
    folders = [str(t.directory) for t in chosen]
    current = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([*folders, *(p for p in current if p not in folders)])


@dataclasses.dataclass(frozen=True)
class Tool:
    """One Go tool: where its source comes from and which binaries it yields."""

    name: str
    version: str
    binaries: tuple[str, ...]
    files: tuple[str, ...] = ()
    """Data files built alongside the binaries (e.g. kwok's stage definitions)."""

    @property
    def directory(self) -> Path:
        return cache_dir() / "bin" / f"{self.name}-{self.version}"

    def path(self, binary: str | None = None) -> Path:
        return self.directory / (binary or self.binaries[0])

    def is_built(self) -> bool:
        return all(os.access(self.path(b), os.X_OK) for b in self.binaries) and all(
            self.path(f).is_file() for f in self.files
        )


KUBERNETES = Tool(
    "kubernetes",
    KUBERNETES_VERSION,
    ("kube-apiserver", "kube-controller-manager", "kube-scheduler"),
)
ETCD = Tool("etcd", ETCD_VERSION, ("etcd",))
KWOK = Tool("kwok", KWOK_VERSION, ("kwok",), files=("stages.yaml",))
KUSTOMIZE = Tool("kustomize", KUSTOMIZE_VERSION, ("kustomize",))
HELM = Tool("helm", HELM_VERSION, ("helm",))
PROMETHEUS = Tool("prometheus", PROMETHEUS_VERSION, ("prometheus",))
"""For the promotion waves' PromQL verification gates (tests and demo)."""
REGISTRY = Tool("registry", REGISTRY_VERSION, ("registry",))
SOPS = Tool("sops", SOPS_VERSION, ("sops",))
AGE = Tool("age", AGE_VERSION, ("age", "age-keygen"))
FLUX_CLI = Tool("flux", FLUX_CLI_VERSION, ("flux",))
TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (KUBERNETES, ETCD, KWOK, KUSTOMIZE, HELM, FLUX_CLI, PROMETHEUS, REGISTRY, SOPS, AGE)
}
"""The default set: what the tests and the demo need."""

SOURCE_CONTROLLER = Tool(
    "source-controller",
    FLUX_SOURCE_CONTROLLER_VERSION,
    ("source-controller",),
    files=("crds.yaml",),
)
KUSTOMIZE_CONTROLLER = Tool(
    "kustomize-controller",
    FLUX_KUSTOMIZE_CONTROLLER_VERSION,
    ("kustomize-controller",),
    files=("crds.yaml",),
)
FLUX_TOOLS: tuple[Tool, ...] = (SOURCE_CONTROLLER, KUSTOMIZE_CONTROLLER)
"""Flux's controllers, for the side-by-side benchmarks; ``crds.yaml`` holds their CRDs."""

ALL_TOOLS: dict[str, Tool] = {**TOOLS, **{t.name: t for t in FLUX_TOOLS}}
GROUPS: dict[str, tuple[Tool, ...]] = {"flux-controllers": FLUX_TOOLS}
"""Names that stand for several tools on the command line."""


class BuildError(RuntimeError):
    """A Go build failed; the message carries the tail of the compiler output."""


def binary(name: str) -> Path:
    """Path of a built binary by its file name, e.g. ``binary("kube-apiserver")``."""
    for tool in ALL_TOOLS.values():
        if name in tool.binaries:
            return tool.path(name)
    raise KeyError(f"no tool yields a binary named {name!r}")


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env["CGO_ENABLED"] = "0"
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


class _Progress:
    """Prints which tool is building and for how long, every ``every`` seconds."""

    def __init__(self, label: str, every: float = 30.0) -> None:
        self.label = label
        self.every = every
        self.started = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self) -> _Progress:
        print(f"==> building {self.label}", flush=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        outcome = "failed" if exc[0] else "done"
        print(f"==> {self.label}: {outcome} in {self.elapsed()}", flush=True)

    def elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60}m{seconds % 60:02d}s"

    def _tick(self) -> None:
        while not self._done.wait(self.every):
            print(f"    {self.label}: still building ({self.elapsed()})", flush=True)


def _run(args: Sequence[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise BuildError(f"`{' '.join(args)}` failed in {cwd}:\n{tail}")
    return result.stdout


def _wrapper_module(workdir: Path, name: str) -> None:
    (workdir / "go.mod").write_text(f"module fleetbuild/{name}\n\ngo 1.24\n")


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """The ``k8s.io/<name>`` modules that kubernetes' go.mod requires at v0.0.0.

    Those are its staging modules, replaced by local paths upstream; outside the
    kubernetes tree they must be replaced by their published ``v0.<minor>.<patch>``.
    """
    pattern = re.compile(r"^\s*(?:require\s+)?(k8s\.io/[\w./-]+)\s+v0\.0\.0\s*$", re.M)
    return sorted(set(pattern.findall(kubernetes_go_mod)))


def _version_ldflags(version: str) -> str:
    major, minor, _ = version.lstrip("v").split(".")
    build_date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    flags = [
        f"-X {package}.{key}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in values.items()
    ]
    return " ".join(["-s", "-w", "-checklinkname=0", *flags])


def _build_kubernetes(tool: Tool, workdir: Path, out: Path, env: dict[str, str]) -> None:
    _wrapper_module(workdir, "kubernetes")
    info = json.loads(
        _run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{tool.version}"], workdir, env)
    )
    staging = staging_modules(Path(info["GoMod"]).read_text())
    if not staging:
        raise BuildError(f"found no staging modules in {info['GoMod']}")
    _, minor, patch = tool.version.lstrip("v").split(".")
    published = f"v0.{minor}.{patch}"
    print(f"    replacing {len(staging)} staging modules with {published}", flush=True)
    _run(["go", "mod", "edit", f"-require=k8s.io/kubernetes@{tool.version}"], workdir, env)
    for module in staging:
        _run(["go", "mod", "edit", f"-replace={module}={module}@{published}"], workdir, env)
    packages = [f"k8s.io/kubernetes/cmd/{b}" for b in tool.binaries]
    # Naming the version keeps `go get` from upgrading kubernetes to its newest release;
    # unlike `go mod tidy` it does not fetch the test-only modules of the whole tree.
    _run(["go", "get", *(f"{p}@{tool.version}" for p in packages)], workdir, env)
    _run(
        [
            "go",
            "build",
            "-trimpath",
            "-ldflags",
            _version_ldflags(tool.version),
            "-o",
            str(out),
            *packages,
        ],
        workdir,
        env,
    )


def _build_etcd(tool: Tool, workdir: Path, out: Path, env: dict[str, str]) -> None:
    # etcd's server module carries replace directives, so `go install` refuses it.
    _wrapper_module(workdir, "etcd")
    package = "go.etcd.io/etcd/server/v3"
    _run(["go", "get", f"{package}@{tool.version}"], workdir, env)
    _run(
        ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), package],
        workdir,
        env,
    )


_INSTALL_PACKAGES: dict[str, tuple[str, ...]] = {
    "kwok": ("sigs.k8s.io/kwok/cmd/kwok",),
    "kustomize": ("sigs.k8s.io/kustomize/kustomize/v5",),
    "helm": ("helm.sh/helm/v3/cmd/helm",),
    "prometheus": ("github.com/prometheus/prometheus/cmd/prometheus",),
    "registry": ("github.com/distribution/distribution/v3/cmd/registry",),
    "sops": ("github.com/getsops/sops/v3/cmd/sops",),
    "age": ("filippo.io/age/cmd/age", "filippo.io/age/cmd/age-keygen"),
}


def _build_by_install(tool: Tool, workdir: Path, out: Path, env: dict[str, str]) -> None:
    env = dict(env, GOBIN=str(out))
    packages = [f"{p}@{tool.version}" for p in _INSTALL_PACKAGES[tool.name]]
    ldflags = "-s -w"
    tags = ""
    if tool.name == "helm":
        ldflags += f" -X helm.sh/helm/v3/internal/version.version={tool.version}"
    if tool.name == "prometheus":
        # No service-discovery plugins (cloud SDKs: most of the build): static and file
        # targets are all the gates need. The UI is not embedded; the HTTP API is served.
        tags = "remove_all_sd"
        ldflags += f" -X github.com/prometheus/common/version.Version={_prometheus_release()}"
    if tool.name == "registry":
        ldflags += f" -X github.com/distribution/distribution/v3/version.version={tool.version}"
    _run(
        ["go", "install", "-trimpath", "-tags", tags, "-ldflags", ldflags, *packages],
        workdir,
        env,
    )
    if tool.name == "kwok":
        _write_kwok_stages(tool, workdir, out, env)


def _prometheus_release() -> str:
    """``v0.316.0`` -> ``3.16.0``: the release the module version stands for."""
    minor = int(PROMETHEUS_VERSION.lstrip("v").split(".")[1])
    patch = PROMETHEUS_VERSION.rsplit(".", 1)[1]
    return f"{minor // 100}.{minor % 100}.{patch}"


# kwok ships its node and pod lifecycles as Stage manifests beside its source; without
# them it refuses to start. These are the ones `kwokctl` uses by default ("fast").
_KWOK_STAGE_DIRS = ("node/fast", "node/heartbeat-with-lease", "pod/fast")


def _write_kwok_stages(tool: Tool, workdir: Path, out: Path, env: dict[str, str]) -> None:
    download = ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{tool.version}"]
    stage_root = Path(json.loads(_run(download, workdir, env))["Dir"]) / "kustomize" / "stage"
    documents = []
    for folder in _KWOK_STAGE_DIRS:
        kustomization = (stage_root / folder / "kustomization.yaml").read_text()
        for resource in re.findall(r"^\s*-\s*(\S+\.yaml)\s*$", kustomization, re.M):
            documents.append((stage_root / folder / resource).read_text().strip())
    if not documents:
        raise BuildError(f"found no kwok stages under {stage_root}")
    (out / "stages.yaml").write_text("\n---\n".join(documents) + "\n")


def go_mod_replaces(go_mod: str) -> list[tuple[str, str]]:
    """The ``replace`` directives of a go.mod as ``(old, new)`` pairs.

    Each side is ``path`` or ``path version`` (one space), e.g.
    ``("github.com/fluxcd/kustomize-controller/api", "./api")``.
    """
    entries: list[str] = []
    in_block = False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
            elif line:
                entries.append(line)
        elif re.match(r"replace\b", line):
            rest = line[len("replace") :].strip()
            if rest == "(":
                in_block = True
            elif rest:
                entries.append(rest)
    pairs = []
    for entry in entries:
        old, arrow, new = entry.partition("=>")
        if arrow:
            pairs.append((" ".join(old.split()), " ".join(new.split())))
    return pairs


def wrapper_replaces(module: str, version: str, go_mod: str) -> list[str]:
    """``go mod edit -replace`` arguments that rebuild ``module``'s own build list outside it.

    A go.mod's replaces apply only in its own module, so a wrapper module mirrors them.
    A local path (``<module>/api => ./api``) becomes the published submodule at the
    same version; any other local path cannot be mirrored and is an error.
    """
    arguments = []
    for old, new in go_mod_replaces(go_mod):
        old_spec = old.replace(" ", "@")
        if new.startswith(("./", "../")):
            submodule = f"{module}/{new.removeprefix('./').rstrip('/')}"
            if new.startswith("../") or old.split()[0] != submodule:
                raise BuildError(f"{module}@{version}: cannot mirror local replace {old} => {new}")
            arguments.append(f"-replace={old_spec}={submodule}@{version}")
        else:
            arguments.append(f"-replace={old_spec}={new.replace(' ', '@')}")
    return arguments


_FLUX_MODULES = {
    "source-controller": "github.com/fluxcd/source-controller",
    "kustomize-controller": "github.com/fluxcd/kustomize-controller",
}

# Dependencies pinned off the version upstream requires because the module proxy this
# machine reaches refuses that version's zip ("403 This module version is not available"):
# source-controller v1.9.6 requires github.com/fluxcd/pkg/artifact v0.18.3 (v0.18.2 is
# refused too); v0.18.1 is the newest patch release of the same minor that is served.
_FLUX_PINS: dict[str, tuple[str, ...]] = {
    "source-controller": ("github.com/fluxcd/pkg/artifact@v0.18.1",),
}


def _build_flux_controller(tool: Tool, workdir: Path, out: Path, env: dict[str, str]) -> None:
    """A Flux controller (main package at its module root) from a wrapper module."""
    module = _FLUX_MODULES[tool.name]
    _wrapper_module(workdir, tool.name)
    info = json.loads(
        _run(["go", "mod", "download", "-json", f"{module}@{tool.version}"], workdir, env)
    )
    if info.get("Error"):
        raise BuildError(f"{module}@{tool.version}: {info['Error']}")
    go_mod = Path(info["GoMod"]).read_text()
    replaces = wrapper_replaces(module, tool.version, go_mod)
    print(f"    mirroring {len(replaces)} replace directive(s) of {module}", flush=True)
    for pin in _FLUX_PINS.get(tool.name, ()):
        print(f"    pinning {pin} (upstream's version is not served)", flush=True)
        replaces.append(f"-replace={pin.split('@')[0]}={pin}")
    _run(["go", "mod", "edit", f"-require={module}@{tool.version}", *replaces], workdir, env)
    _run(["go", "get", f"{module}@{tool.version}"], workdir, env)
    _run(
        [
            "go",
            "build",
            "-trimpath",
            "-tags",
            "netgo,osusergo",
            "-ldflags",
            "-s -w",
            "-o",
            str(out / tool.binaries[0]),
            module,
        ],
        workdir,
        env,
    )
    _write_flux_crds(Path(info["Dir"]), out)


def _write_flux_crds(module_dir: Path, out: Path) -> None:
    """The controller's CRDs (``config/crd/bases/*.yaml``) as one multi-document file."""
    files = sorted((module_dir / "config" / "crd" / "bases").glob("*.yaml"))
    if not files:
        raise BuildError(f"found no CRDs under {module_dir / 'config' / 'crd' / 'bases'}")
    documents = [f.read_text().strip().removeprefix("---").strip() for f in files]
    (out / "crds.yaml").write_text("---\n" + "\n---\n".join(documents) + "\n")


_FLUX_CLI_MODULE = "github.com/fluxcd/flux2/v2"

# `cmd/flux` embeds `manifests/*.yaml`, which flux2's release process generates from
# controller manifests downloaded from GitHub releases; the published module has none.
# They serve only `flux install` and `flux bootstrap`, which fleet does not support (the
# agent replaces Flux's controllers), so the build embeds this one note instead.
_FLUX_CLI_EMBEDDED_NOTE = """\
# Built by fleet (fleet/localkube/toolchain.py) without Flux's controller manifests:
# `flux install` and `flux bootstrap` are not supported by this binary.
"""


def flux_cli_ldflags(version: str) -> str:
    """Linker flags of a flux CLI release: ``main.VERSION`` without the leading ``v``.

    flux prints ``"v" + VERSION`` (``flux version --client``), as its goreleaser config does.
    """
    return f"-s -w -X main.VERSION={version.removeprefix('v')}"


def _build_flux_cli(tool: Tool, workdir: Path, out: Path, env: dict[str, str]) -> None:
    """``flux`` from a writable copy of its module, so its own go.mod (replaces) applies."""
    info = json.loads(
        _run(
            ["go", "mod", "download", "-json", f"{_FLUX_CLI_MODULE}@{tool.version}"],
            workdir,
            env,
        )
    )
    if info.get("Error"):
        raise BuildError(f"{_FLUX_CLI_MODULE}@{tool.version}: {info['Error']}")
    source = workdir / "flux2"
    shutil.copytree(info["Dir"], source, copy_function=shutil.copyfile)
    for folder, _, _ in os.walk(source):
        os.chmod(folder, 0o755)
    manifests = source / "cmd" / "flux" / "manifests"
    manifests.mkdir(exist_ok=True)
    (manifests / "not-embedded.yaml").write_text(_FLUX_CLI_EMBEDDED_NOTE)
    _run(
        [
            "go",
            "build",
            "-trimpath",
            "-ldflags",
            flux_cli_ldflags(tool.version),
            "-o",
            str(out / "flux"),
            "./cmd/flux",
        ],
        source,
        env,
    )


_BUILDERS = {
    "kubernetes": _build_kubernetes,
    "etcd": _build_etcd,
    "kwok": _build_by_install,
    "kustomize": _build_by_install,
    "helm": _build_by_install,
    "prometheus": _build_by_install,
    "registry": _build_by_install,
    "sops": _build_by_install,
    "age": _build_by_install,
    "source-controller": _build_flux_controller,
    "kustomize-controller": _build_flux_controller,
    "flux": _build_flux_cli,
}


def build(tool: Tool, *, force: bool = False) -> Path:
    """Build ``tool`` unless its binaries are cached; returns its directory.

    Binaries are built into a scratch folder and moved into place only when all of them
    exist, so an interrupted build never leaves a half-populated cache entry.
    """
    if tool.is_built() and not force:
        return tool.directory
    if shutil.which("go") is None:
        raise BuildError(
            "the Go toolchain (`go`) is not on PATH; it is needed to build " + tool.name
        )
    tool.directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fleet-build-{tool.name}-") as scratch:
        workdir = Path(scratch) / "module"
        out = Path(scratch) / "out"
        workdir.mkdir()
        out.mkdir()
        with _Progress(f"{tool.name} {tool.version}"):
            _BUILDERS[tool.name](tool, workdir, out, _go_env())
        missing = [b for b in (*tool.binaries, *tool.files) if not (out / b).exists()]
        if missing:
            raise BuildError(f"{tool.name} build produced no {', '.join(missing)}")
        if tool.directory.exists():
            shutil.rmtree(tool.directory)
        shutil.move(str(out), tool.directory)
    return tool.directory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleet.localkube.toolchain",
        description="Build (or reuse) the Kubernetes binaries and tools fleet runs.",
    )
    parser.add_argument(
        "tools",
        nargs="*",
        metavar="TOOL",
        help=f"tools to build: {', '.join(ALL_TOOLS)}, or `flux-controllers` for "
        f"{' and '.join(t.name for t in FLUX_TOOLS)} (default: {', '.join(TOOLS)})",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument(
        "--print-dir", action="store_true", help="print the cache folder of each tool and exit"
    )
    args = parser.parse_args(argv)
    choices = [*ALL_TOOLS, *GROUPS]
    if unknown := [n for n in args.tools if n not in choices]:
        parser.error(f"unknown tool(s): {', '.join(unknown)}; choose from {', '.join(choices)}")
    selected: list[Tool] = []
    for name in args.tools or TOOLS:
        for tool in GROUPS.get(name) or (ALL_TOOLS[name],):
            if tool not in selected:
                selected.append(tool)
    if args.print_dir:
        for tool in selected:
            print(f"{tool.name}\t{tool.directory}")
        return 0
    started = time.monotonic()
    for tool in selected:
        if tool.is_built() and not args.force:
            print(f"==> {tool.name} {tool.version}: cached in {tool.directory}", flush=True)
            continue
        try:
            build(tool, force=args.force)
        except BuildError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    print(f"==> all tools ready in {int(time.monotonic() - started)}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
