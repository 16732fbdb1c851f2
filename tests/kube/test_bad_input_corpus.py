"""Every repository case of the bad-input corpus (tests/badinput/repository.yaml), pushed
to one running agent commit after commit: the unit at fault turns Ready=False with a
message naming the file, object or field; the agent keeps running (the root unit is Ready
again once the case is reverted); the objects already running are left alone."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from agent.loop import Agent
from fleet.api import unit as unit_api
from fleet.kube import KubeClient
from fleet.localkube.cluster import LocalCluster
from tests.agentkit import ready_condition, running_agent
from tests.badinput import RepositoryCase, repository_cases
from tests.conftest import api_client_for
from tests.gitservers import WorkingClone, git_daemon, served_repo
from tests.kube.test_agent_units import settled

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

CASES = repository_cases()


@dataclasses.dataclass
class CorpusAgent:
    agent: Agent
    kube: KubeClient
    repo: WorkingClone
    namespace: str
    sentinel: dict[str, Any]


@pytest.fixture(scope="module")
def corpus_namespace(local_clusters: dict[str, LocalCluster]) -> Iterator[str]:
    name = f"fleet-badinput-{uuid.uuid4().hex[:6]}"
    with api_client_for(local_clusters["dev"]) as api:
        core = k8s.CoreV1Api(api)
        existing = {n.metadata.name for n in core.list_namespace().items}
        for namespace in {"flux-system", name} - existing:
            core.create_namespace({"metadata": {"name": namespace}})
        try:
            yield name
        finally:
            core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="module")
async def corpus_agent(
    cluster: LocalCluster, corpus_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CorpusAgent]:
    root = tmp_path_factory.mktemp("badinput")
    served = root / "served"
    served.mkdir()
    repo = served_repo(served, "fleet.git")
    sentinel = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "running", "namespace": corpus_namespace},
        "data": {"v": "1"},
    }
    sha = repo.commit({"clusters/dev/running.yaml": yaml.safe_dump(sentinel)})
    repo.push("main")
    kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig_path))
    try:
        with git_daemon(served) as daemon:
            async with running_agent(cluster, daemon.url("fleet.git"), root / "agent") as agent:
                await settled(kube, agent, unit_api.ROOT_UNIT, sha, "True")
                running = await kube.get("v1", "ConfigMap", "running", corpus_namespace)
                assert running is not None
                yield CorpusAgent(agent, kube, repo, corpus_namespace, running)
    finally:
        await kube.close()


def _unit(case: RepositoryCase) -> str:
    if case.unit == "root":
        return unit_api.ROOT_UNIT
    namespace, _, name = case.unit.partition(".")
    return unit_api.unit_resource_name(namespace, name)


async def _configmaps(corpus: CorpusAgent) -> dict[str, tuple[str, Any]]:
    found, _ = await corpus.kube.list("v1", "ConfigMap", corpus.namespace)
    return {
        o["metadata"]["name"]: (o["metadata"]["uid"], o.get("data"))
        for o in found
        if o["metadata"]["name"] != "kube-root-ca.crt"
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_bad_repository_content_is_refused_by_name_and_running_objects_stay(
    case: RepositoryCase, corpus_agent: CorpusAgent
) -> None:
    corpus = corpus_agent
    before = await _configmaps(corpus)
    sha = corpus.repo.commit(case.files, symlinks=case.symlinks, message=case.name)
    corpus.repo.push("main")
    try:
        status = await settled(corpus.kube, corpus.agent, _unit(case), sha, "False")
        message = ready_condition(status)["message"]
        for expected in case.expect:
            assert expected in message, f"{case.name}: {expected!r} not in {message!r}"
        running = await corpus.kube.get("v1", "ConfigMap", "running", corpus.namespace)
        assert running is not None
        assert running["metadata"]["uid"] == corpus.sentinel["metadata"]["uid"]
        assert running["data"] == {"v": "1"}
        assert await _configmaps(corpus) == before
    finally:
        revert = corpus.repo.commit(
            {path: None for path in case.paths}, message=f"revert {case.name}"
        )
        corpus.repo.push("main")
    # The agent survived: it takes the good tree again.
    await settled(corpus.kube, corpus.agent, unit_api.ROOT_UNIT, revert, "True")


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    assert all(Path(p).parts[0] != ".." for c in CASES for p in c.paths)
