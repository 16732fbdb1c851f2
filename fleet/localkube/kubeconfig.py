"""Kubeconfig files for local clusters, with credentials embedded so they can be copied."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from fleet.localkube.pki import KeyPair


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig_dict(
    cluster: str, server: str, ca_pem: bytes, client: KeyPair, user: str
) -> dict[str, object]:
    """A kubeconfig with one cluster, one user and one context named after the cluster."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": f"{user}@{cluster}",
                "user": {
                    "client-certificate-data": _b64(client.cert_pem()),
                    "client-key-data": _b64(client.key_pem()),
                },
            }
        ],
        "contexts": [
            {"name": cluster, "context": {"cluster": cluster, "user": f"{user}@{cluster}"}}
        ],
        "current-context": cluster,
    }


def merge(configs: list[dict[str, object]]) -> dict[str, object]:
    """One kubeconfig holding every cluster's context; the first is current."""
    merged: dict[str, object] = {"apiVersion": "v1", "kind": "Config", "preferences": {}}
    for key in ("clusters", "users", "contexts"):
        merged[key] = [item for config in configs for item in config[key]]  # type: ignore[attr-defined]
    merged["current-context"] = configs[0]["current-context"] if configs else ""
    return merged


def write(path: Path, config: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
