"""The agent's install manifests, as plain data: no I/O, no Kubernetes client.

``manifests(InstallOptions(...))`` returns the objects ``fleet agent install`` applies and
``fleet bootstrap`` commits under ``clusters/<name>/fleet-system/``; ``secrets(...)``
returns the credential Secrets, which are applied but never committed.
"""

from fleet.install import objects
from fleet.install.objects import (
    BOOTSTRAP_FIELD_MANAGER,
    DEPLOYMENT_NAME,
    GIT_SECRET_NAME,
    HUB_SECRET_NAME,
    INSTALL_LABELS,
    RUN_LOCALLY_ANNOTATION,
    SERVICE_ACCOUNT,
    InstallOptions,
    git_secret,
    hub_secret,
    manifests,
    to_yaml,
)

__all__ = [
    "BOOTSTRAP_FIELD_MANAGER",
    "DEPLOYMENT_NAME",
    "GIT_SECRET_NAME",
    "HUB_SECRET_NAME",
    "INSTALL_LABELS",
    "RUN_LOCALLY_ANNOTATION",
    "SERVICE_ACCOUNT",
    "InstallOptions",
    "git_secret",
    "hub_secret",
    "manifests",
    "objects",
    "to_yaml",
]
