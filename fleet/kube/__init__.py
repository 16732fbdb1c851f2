"""The Kubernetes API edge: a small async client, its errors, and object references."""

from fleet.kube.client import KubeClient, ResourceInfo, WatchEvent
from fleet.kube.errors import (
    ApiUnavailable,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    Unauthorized,
)

__all__ = [
    "ApiUnavailable",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeClient",
    "KubeError",
    "NotFound",
    "ResourceInfo",
    "Unauthorized",
    "WatchEvent",
]
