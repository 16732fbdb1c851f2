"""Render the agent's install manifests from a few options (pure: plain dicts in and out)."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from fleet import __version__
from fleet.api import unit as unit_api

Object = dict[str, Any]

NAMESPACE = unit_api.AGENT_NAMESPACE
SERVICE_ACCOUNT = "fleet-agent"
DEPLOYMENT_NAME = "fleet-agent"
GIT_SECRET_NAME = "fleet-git-auth"
"""Git credentials in Flux's secret format, mounted for ``--git-secret-dir``."""
HUB_SECRET_NAME = "fleet-hub-token"
"""This cluster's hub token (key ``token``), mounted for ``--hub-token-file``."""
BOOTSTRAP_FIELD_MANAGER = "fleet-bootstrap"
RUN_LOCALLY_ANNOTATION = "fleet.dev/run-locally"
"""On the Deployment when the agent runs as a local process (``fleet bootstrap --run-local``):
the Deployment has no replicas, so the cluster never runs a second agent."""
INSTALL_LABELS = {"app.kubernetes.io/name": "fleet-agent", "app.kubernetes.io/part-of": "fleet"}
"""On every install object, so ``uninstall`` finds them all."""
METRICS_PORT = 9797
GIT_SECRET_DIR = "/etc/fleet/git"
HUB_TOKEN_DIR = "/etc/fleet/hub"
WORK_DIR = "/var/cache/fleet"
DEFAULT_IMAGE = f"fleet:{__version__}"
"""What ``make image`` builds and ``make kind-demo`` loads into the clusters."""

MANAGED_RESOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "",
        (
            "namespaces",
            "configmaps",
            "services",
            "serviceaccounts",
            "persistentvolumeclaims",
            "limitranges",
            "resourcequotas",
        ),
    ),
    ("apps", ("deployments", "statefulsets", "daemonsets")),
    ("batch", ("jobs", "cronjobs")),
    ("autoscaling", ("horizontalpodautoscalers",)),
    ("policy", ("poddisruptionbudgets",)),
    ("networking.k8s.io", ("ingresses", "networkpolicies")),
    ("rbac.authorization.k8s.io", ("roles", "rolebindings", "clusterroles", "clusterrolebindings")),
    ("apiextensions.k8s.io", ("customresourcedefinitions",)),
    ("kustomize.toolkit.fluxcd.io", ("kustomizations",)),
    ("helm.toolkit.fluxcd.io", ("helmreleases",)),
    ("source.toolkit.fluxcd.io", ("gitrepositories", "helmrepositories", "ocirepositories")),
)
"""What a least-privilege agent may manage cluster-wide. Secrets are deliberately absent:
the agent reads and writes Secrets in its own namespace only (see docs/security.md)."""
READ_ONLY_RESOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("pods", "events")),
    ("apps", ("replicasets",)),
)
"""Read for health checks and ``fleet events``; never written."""
WRITE_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
READ_VERBS = ("get", "list", "watch")


@dataclasses.dataclass(frozen=True)
class InstallOptions:
    """What differs between two installs of the agent."""

    cluster: str
    repo: str
    ref: str = "branch:main"
    """As ``fleet agent run --ref`` takes it."""
    image: str = DEFAULT_IMAGE
    least_privilege: bool = False
    """A ClusterRole of the kinds in ``MANAGED_RESOURCES`` instead of cluster-admin."""
    hub_url: str | None = None
    git_secret: bool = False
    """Mount ``fleet-git-auth`` for ``--git-secret-dir`` (a repository that needs credentials)."""
    status_branch: str | None = None
    run_locally: bool = False
    """No replicas: the agent runs as a local process beside the cluster."""
    interval: str = "1m"


def _meta(
    name: str, namespace: str | None = NAMESPACE, annotations: Mapping[str, str] | None = None
) -> Object:
    meta: Object = {"name": name, "labels": dict(INSTALL_LABELS)}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def agent_args(options: InstallOptions) -> list[str]:
    """The arguments of ``fleet agent run`` in the Deployment."""
    args = [
        "agent",
        "run",
        f"--cluster={options.cluster}",
        f"--repo={options.repo}",
        f"--ref={options.ref}",
        f"--interval={options.interval}",
        f"--metrics-address=0.0.0.0:{METRICS_PORT}",
        f"--work-dir={WORK_DIR}",
        "--log-format=json",
    ]
    if options.git_secret:
        args.append(f"--git-secret-dir={GIT_SECRET_DIR}")
    if options.hub_url:
        args += [f"--hub-url={options.hub_url}", f"--hub-token-file={HUB_TOKEN_DIR}/token"]
    if options.status_branch:
        args.append(f"--status-branch={options.status_branch}")
    return args


def _rules(groups: Iterable[tuple[str, Sequence[str]]], verbs: Sequence[str]) -> list[Object]:
    return [
        {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
        for group, resources in groups
    ]


def rbac(options: InstallOptions) -> list[Object]:
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
    binding_meta = _meta(f"fleet-agent-{options.cluster}", None)
    if not options.least_privilege:
        return [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": binding_meta,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [subject],
            }
        ]
    cluster_rules = [
        *_rules(MANAGED_RESOURCES, WRITE_VERBS),
        *_rules(READ_ONLY_RESOURCES, READ_VERBS),
        # Flux's serviceAccountName: the agent acts as a unit's service account.
        {
            "apiGroups": [""],
            "resources": ["serviceaccounts", "users", "groups"],
            "verbs": ["impersonate"],
        },
    ]
    own_rules = [
        {"apiGroups": [unit_api.GROUP], "resources": ["units"], "verbs": list(WRITE_VERBS)},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": list(WRITE_VERBS)},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "name": "fleet-agent"}
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta("fleet-agent", None),
            "rules": cluster_rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": binding_meta,
            "roleRef": {**role_ref, "kind": "ClusterRole"},
            "subjects": [subject],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta("fleet-agent"),
            "rules": own_rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta("fleet-agent"),
            "roleRef": {**role_ref, "kind": "Role"},
            "subjects": [subject],
        },
    ]


def deployment(options: InstallOptions) -> Object:
    selector = {"app.kubernetes.io/name": "fleet-agent"}
    volumes: list[Object] = [
        {"name": "work", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[Object] = [
        {"name": "work", "mountPath": WORK_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if options.git_secret:
        volumes.append(
            {"name": "git-auth", "secret": {"secretName": GIT_SECRET_NAME, "defaultMode": 0o400}}
        )
        mounts.append({"name": "git-auth", "mountPath": GIT_SECRET_DIR, "readOnly": True})
    if options.hub_url:
        volumes.append(
            {"name": "hub-token", "secret": {"secretName": HUB_SECRET_NAME, "defaultMode": 0o400}}
        )
        mounts.append({"name": "hub-token", "mountPath": HUB_TOKEN_DIR, "readOnly": True})
    probe = {"httpGet": {"port": "metrics"}, "periodSeconds": 10, "timeoutSeconds": 3}
    annotations = {RUN_LOCALLY_ANNOTATION: "true"} if options.run_locally else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(DEPLOYMENT_NAME, annotations=annotations),
        "spec": {
            "replicas": 0 if options.run_locally else 1,
            # One agent per cluster, ever: the old one stops before the new one starts.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**selector, "app.kubernetes.io/part-of": "fleet"}},
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "agent",
                            "image": options.image,
                            "args": agent_args(options),
                            "ports": [
                                {"name": "metrics", "containerPort": METRICS_PORT},
                            ],
                            "livenessProbe": {
                                **probe,
                                "httpGet": {"path": "/healthz", "port": "metrics"},
                            },
                            "readinessProbe": {
                                **probe,
                                "httpGet": {"path": "/readyz", "port": "metrics"},
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"memory": "1Gi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }


def manifests(options: InstallOptions) -> list[Object]:
    """Every install object but the Secrets, in apply order; what bootstrap commits to Git."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(NAMESPACE, None)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(SERVICE_ACCOUNT)},
        *rbac(options),
        deployment(options),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("fleet-agent-metrics"),
            "spec": {
                "selector": {"app.kubernetes.io/name": "fleet-agent"},
                "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
            },
        },
    ]


def _secret(name: str, data: Mapping[str, str]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(name),
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def git_secret(data: Mapping[str, str]) -> Object:
    """Git credentials with Flux's keys (``identity``, ``known_hosts``, ``username``, ...)."""
    return _secret(GIT_SECRET_NAME, data)


def hub_secret(token: str) -> Object:
    return _secret(HUB_SECRET_NAME, {"token": token})


def to_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    return yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False)
