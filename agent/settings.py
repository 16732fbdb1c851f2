"""How one agent is configured: which cluster, which repository, how often, how hard."""

from __future__ import annotations

import datetime
from pathlib import Path

import pydantic

from fleet import tools
from fleet.api import unit as unit_api
from fleet.source import GitAuth, GitRef


class AgentSettings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True, frozen=True)

    cluster: str
    """The cluster's name in the fleet; its path is ``clusters/<cluster>`` by default."""
    repo: str
    """The fleet repository: a Git URL or a local path."""
    ref: GitRef = GitRef()
    auth: GitAuth = pydantic.Field(default_factory=GitAuth.none)
    path_template: str = "clusters/{cluster}"
    interval: datetime.timedelta = datetime.timedelta(minutes=1)
    """How often the fleet repository is fetched; also the root unit's resync interval."""
    namespace: str = unit_api.AGENT_NAMESPACE
    """Where the agent keeps its Units and Events."""
    kubeconfig: str | None = None
    """None: in-cluster service account, else ~/.kube/config rules."""
    context: str | None = None
    work_dir: Path = pydantic.Field(default_factory=lambda: tools.cache_dir() / "agent")
    """Git mirrors and checkouts; disposable, rebuilt from the remote when lost."""
    kustomize_binary: Path | None = None
    """The ``kustomize`` to render with; None: the one found on PATH."""
    helm_binary: Path | None = None
    """The ``helm`` to run releases with; None: the one found on PATH."""
    workers: int = 8
    """Units reconciled at once; renders are additionally limited to ``render_workers``."""
    render_workers: int = 4
    """kustomize processes at once; more than twice the cores only adds contention."""
    apply_concurrency: int = 64
    """API requests in flight at once, for all units together (one connection each); the
    API server's own limits sit above this."""
    metrics_address: str | None = "127.0.0.1:9797"
    """host:port for /metrics; None turns the endpoint off."""
    default_namespace: str = "default"
    """Namespace for namespaced objects written without one, as kubectl would choose."""
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    """Labels of this cluster (``env=dev``) sent with its reports."""
    hub_url: str | None = None
    """The hub to report to; None: no hub."""
    hub_token: str | None = pydantic.Field(default=None, repr=False)
    hub_ca_file: Path | None = None
    """CA bundle for the hub's TLS certificate; None: the system CAs."""
    status_branch: str | None = None
    """Write this cluster's status to this branch of the fleet repository; None: don't."""
    heartbeat_seconds: int = 30
    """Reports are re-sent this often when nothing changed, so silence means trouble."""
    dependency_requeue: datetime.timedelta = datetime.timedelta(seconds=30)
    """Fallback recheck of a unit blocked on dependsOn (a dependency becoming Ready also
    wakes it at once)."""

    @pydantic.model_validator(mode="after")
    def _hub_needs_a_token(self) -> AgentSettings:
        if self.hub_url and not self.hub_token:
            raise ValueError("a hub URL needs this cluster's hub token (--hub-token-file)")
        return self

    @property
    def cluster_path(self) -> str:
        return self.path_template.format(cluster=self.cluster)

    @property
    def agent_work_dir(self) -> Path:
        return self.work_dir / self.cluster
