"""Running the real ``helm`` binary against the agent's cluster.

Each call is one ``helm`` process with the agent's kubeconfig and context (or, in a pod,
the in-cluster config helm finds itself), optionally impersonating a HelmRelease's
service account, and with helm's own cache, config and data homes inside the agent's
work directory, so nothing of a user's ``~/.config/helm`` leaks in. Failures become
:class:`HelmError` carrying helm's message; the core never sees a CalledProcessError.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from fleet import tools
from fleet.helm import commands, release

log = logging.getLogger(__name__)

NOT_FOUND_MARKERS = ("release: not found", "not found")
GUARD_MARGIN = 60.0
"""Seconds a helm process may run past its own ``--timeout`` (hooks add up) before it is
killed; a release it leaves pending is recovered on the next reconcile."""


class HelmError(Exception):
    """A helm command failed; ``message`` is helm's own explanation, condensed."""

    def __init__(self, action: str, release_name: str, message: str) -> None:
        self.action = action
        self.release = release_name
        self.message = message
        super().__init__(f"helm {action} {release_name}: {message}")


@dataclasses.dataclass(frozen=True)
class KubeAccess:
    """How helm reaches the cluster, and as whom."""

    kubeconfig: str | None = None
    """None: helm's own rules (``$KUBECONFIG``, ``~/.kube/config``, in-cluster)."""
    context: str | None = None
    as_user: str | None = None
    as_groups: tuple[str, ...] = ()

    def as_service_account(self, namespace: str, name: str) -> KubeAccess:
        """Flux's ``serviceAccountName``: act with that account's permissions."""
        return dataclasses.replace(
            self,
            as_user=f"system:serviceaccount:{namespace}:{name}",
            as_groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
        )

    def flags(self) -> list[str]:
        args = []
        if self.kubeconfig:
            args += ["--kubeconfig", self.kubeconfig]
        if self.context:
            args += ["--kube-context", self.context]
        if self.as_user:
            args += ["--kube-as-user", self.as_user]
        for group in self.as_groups:
            args += ["--kube-as-group", group]
        return args


def post_renderer(labels: dict[str, str]) -> list[str]:
    """The ``--post-renderer`` command that labels a release's objects (fleet.helm.postrender)."""
    return [sys.executable, "-m", "fleet.helm.postrender", json.dumps(labels, sort_keys=True)]


class Helm:
    """One cluster's helm: builds the environment once, runs one process per call."""

    def __init__(self, home: Path, access: KubeAccess, *, binary: Path | None = None) -> None:
        self.home = home
        self.access = access
        self.binary = tools.find(tools.HELM, binary)
        home.mkdir(parents=True, exist_ok=True)
        self._env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def with_access(self, access: KubeAccess) -> Helm:
        return Helm(self.home, access, binary=self.binary)

    async def run(
        self, args: Sequence[str], *, action: str, release_name: str, timeout: float = 300.0
    ) -> str:
        """Run ``helm <args>``; stdout on success, HelmError with helm's stderr otherwise."""
        command = [str(self.binary), *args, *self.access.flags()]
        log.debug("running %s", " ".join(command))
        with anyio.move_on_after(timeout + GUARD_MARGIN) as guard:
            done = await anyio.run_process(command, env=self._env, check=False)
        if guard.cancelled_caught:
            raise HelmError(action, release_name, f"helm did not finish within {timeout:.0f}s")
        if done.returncode != 0:
            text = done.stderr.decode(errors="replace") or done.stdout.decode(errors="replace")
            raise HelmError(action, release_name, release.short_error(text))
        return done.stdout.decode(errors="replace")

    async def history(self, name: str, namespace: str) -> list[release.Revision]:
        """Every stored revision, oldest first; empty when the release does not exist."""
        try:
            output = await self.run(
                commands.history(name, namespace), action="history", release_name=name
            )
        except HelmError as error:
            if "not found" in error.message:
                return []
            raise
        return release.parse_history(output)

    async def values(self, name: str, namespace: str, revision: int | None = None) -> Any:
        """The user-supplied values of a revision (``helm get values``)."""
        output = await self.run(
            commands.get_values(name, namespace, revision), action="get values", release_name=name
        )
        return json.loads(output or "null") or {}

    async def manifest(self, name: str, namespace: str, revision: int | None = None) -> str:
        return await self.run(
            commands.get_manifest(name, namespace, revision),
            action="get manifest",
            release_name=name,
        )

    async def pull(
        self,
        reference: str,
        version: str,
        destination: Path,
        *,
        username: str | None = None,
        password: str | None = None,
        plain_http: bool = False,
        timeout: float = 60.0,
    ) -> Path:
        """``helm pull oci://...`` of the newest tag inside ``version`` into an empty
        ``destination``; the package's path."""
        destination.mkdir(parents=True, exist_ok=True)
        args = ["pull", reference, "--version", version, "--destination", str(destination)]
        if username and password:
            args += ["--username", username, "--password", password]
        if plain_http:
            args.append("--plain-http")
        await self.run(args, action="pull", release_name=reference, timeout=timeout)
        packages = sorted(destination.glob("*.tgz"))
        if len(packages) != 1:
            raise HelmError("pull", reference, f"expected one chart package, found {len(packages)}")
        return packages[0]
