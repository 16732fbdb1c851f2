"""Fixtures shared by every test tier.

``local_clusters`` starts three real control planes (dev, staging, prod) once per test
session; ``namespace`` gives each test a fresh namespace in the dev cluster and deletes it
afterwards, as kr8s and lightkube do in their end-to-end suites.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from fleet.kube import KubeClient
from fleet.localkube import toolchain
from fleet.localkube.cluster import LocalCluster, running_clusters
from tests.gitservers import GitDaemon, WorkingClone, git_daemon, served_repo
from tests.pgserver import PostgresServer, postgres_server, postgres_unavailable_reason
from tests.support import ALLOW_SKIPS_VARIABLE, require, skips_allowed

# fleet finds kustomize and helm on PATH, as in production; the tests run the pinned
# builds of the tool cache (and so does every agent process they start).
toolchain.put_on_path()

CLUSTER_NAMES = ("dev", "staging", "prod")
RUN_ID = uuid.uuid4().hex[:6]


TIERS = ("unit", "integration", "kube", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The folder under tests/ decides the tier, so no test can forget its marker; the fast
    # tiers run first (a broken core fails in seconds), and within a tier the tests marked
    # ``destructive`` (they break a control plane on purpose) run last.
    def rank(item: pytest.Item) -> tuple[int, bool]:
        tier = next((p for p in Path(str(item.fspath)).parts if p in TIERS), None)
        order = TIERS.index(tier) if tier else len(TIERS)
        return order, item.get_closest_marker("destructive") is not None

    for item in items:
        tier = next((p for p in Path(str(item.fspath)).parts if p in TIERS), None)
        if tier:
            item.add_marker(getattr(pytest.mark, tier))
    items.sort(key=rank)


_skipped: list[pytest.TestReport] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A skipped test is a part of the product left untested: the run is not green unless a
    # developer opted out explicitly (tests.support.skips_allowed).
    if _skipped and not skips_allowed() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped and not skips_allowed():
        terminalreporter.section("skipped tests fail this run", sep="=", red=True)
        for report in _skipped:
            terminalreporter.line(f"{report.nodeid}: {_skip_reason(report)}", red=True)
        terminalreporter.line(
            f"Install what they need (`make system-deps`, `make k8s-bin`), or set "
            f"{ALLOW_SKIPS_VARIABLE}=1 to allow skips on a developer machine.",
            red=True,
        )


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    return str(report.longrepr)


@pytest.fixture(scope="session")
def kustomize_built() -> None:
    """The real kustomize, built by ``make k8s-bin``; a test needing it fails without it."""
    require(
        None
        if toolchain.KUSTOMIZE.is_built()
        else "kustomize is not built; run `make k8s-bin` (python -m fleet.localkube.toolchain)"
    )


@pytest.fixture(scope="session")
def local_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LocalCluster]]:
    root = tmp_path_factory.mktemp("clusters")
    with running_clusters(CLUSTER_NAMES, root) as clusters:
        yield {c.name: c for c in clusters}


@pytest.fixture(scope="session")
def cluster(local_clusters: dict[str, LocalCluster]) -> LocalCluster:
    """The dev cluster: the default target of single-cluster tests."""
    return local_clusters["dev"]


def api_client_for(target: LocalCluster | Path) -> client.ApiClient:
    """A client for a cluster's admin kubeconfig, or for any kubeconfig file."""
    path = target.kubeconfig_path if isinstance(target, LocalCluster) else target
    return config.new_client_from_config(config_file=str(path))


@pytest.fixture(scope="session")
def api_client(cluster: LocalCluster) -> Iterator[client.ApiClient]:
    api = api_client_for(cluster)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    name = f"fleet-pytest-{RUN_ID}-{uuid.uuid4().hex[:4]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="module")
def flux_system_namespace(local_clusters: dict[str, LocalCluster]) -> None:
    """The dev cluster's ``flux-system`` namespace, where Flux objects (and so units) live."""
    with api_client_for(local_clusters["dev"]) as api:
        core = client.CoreV1Api(api)
        if "flux-system" not in {n.metadata.name for n in core.list_namespace().items}:
            core.create_namespace({"metadata": {"name": "flux-system"}})


@pytest.fixture
def git(tmp_path: Path) -> Iterator[tuple[GitDaemon, WorkingClone]]:
    """A bare fleet repository served by git daemon, and a working clone to commit with."""
    served = tmp_path / "served"
    served.mkdir()
    repo = served_repo(served, "fleet.git")
    with git_daemon(served) as daemon:
        yield daemon, repo


@pytest.fixture
async def kube(cluster: LocalCluster) -> AsyncIterator[KubeClient]:
    """fleet's own async client, as the dev cluster's admin."""
    client = await KubeClient.from_kubeconfig(str(cluster.kubeconfig_path))
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server, started once per session from the machine's binaries."""
    require(postgres_unavailable_reason())
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A hub database URL: an SQLite file in tmp_path, or a new PostgreSQL schema, so a
    hub test written once runs against both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_schema()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # Textual and kubernetes.aio run on asyncio only; never parametrize over trio.
    return "asyncio"
