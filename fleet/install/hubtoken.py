"""The cluster's hub token for ``fleet bootstrap --hub-admin-token-file``.

The hub keeps only a salted hash of a token, so the cluster's Secret is the one place the
token itself lives. Bootstrap keeps the token that Secret already holds while the hub
accepts it, so a re-run does not pile up tokens; otherwise it asks the hub for a new one
(``POST /api/v1/tokens``) with an admin token.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses

import httpx

from fleet.install import objects
from fleet.kube import KubeClient

TIMEOUT_SECONDS = 30.0


class HubTokenError(Exception):
    """The hub could not be reached, or refused; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class ClusterToken:
    token: str
    created_id: str | None
    """The id of the token the hub just created; None when the Secret's token was kept."""
    replaced: bool = False
    """The Secret held a token the hub no longer accepts: an agent that read that one when
    it started needs a restart to use the new one."""


async def cluster_token(
    kube: KubeClient, hub_url: str, admin_token: str, cluster: str
) -> ClusterToken:
    """The token the cluster's Secret holds if the hub takes it as ``cluster``'s, else a new
    one from the hub."""
    stored = await stored_token(kube)
    async with httpx.AsyncClient(base_url=hub_url.rstrip("/"), timeout=TIMEOUT_SECONDS) as hub:
        try:
            if stored is not None and await _accepted(hub, cluster, stored):
                return ClusterToken(stored, created_id=None)
            token, token_id = await _create(hub, cluster, admin_token)
        except httpx.HTTPError as error:
            raise HubTokenError(f"cannot reach the hub at {hub_url}: {error}") from error
    return ClusterToken(token, created_id=token_id, replaced=stored is not None)


async def stored_token(kube: KubeClient) -> str | None:
    """The token in the Secret ``fleet-system/fleet-hub-token``, if there is one."""
    secret = await kube.get("v1", "Secret", objects.HUB_SECRET_NAME, objects.NAMESPACE)
    encoded = ((secret or {}).get("data") or {}).get("token")
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded).decode().strip() or None
    except (binascii.Error, UnicodeDecodeError):
        return None


async def _accepted(hub: httpx.AsyncClient, cluster: str, token: str) -> bool:
    # The agent's own command stream: only this cluster's live token opens it, and opening
    # it changes nothing. The answer's status comes before any event; nothing is read.
    async with hub.stream(
        "GET",
        f"/api/v1/clusters/{cluster}/commands",
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        if response.status_code in (401, 403):
            return False
        if response.status_code != 200:
            await response.aread()
            raise HubTokenError(_refusal(response, f"checking the token of cluster {cluster}"))
        return True


async def _create(hub: httpx.AsyncClient, cluster: str, admin_token: str) -> tuple[str, str]:
    """(the new token, its id)."""
    response = await hub.post(
        "/api/v1/tokens",
        json={"kind": "cluster", "cluster": cluster},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    if response.status_code != 201:
        raise HubTokenError(_refusal(response, f"creating a token for cluster {cluster}"))
    created = response.json()
    return str(created["token"]), str(created["id"])


def _refusal(response: httpx.Response, doing: str) -> str:
    try:
        message = response.json().get("error") or response.text
    except ValueError:
        message = response.text
    return f"the hub answered {response.status_code} when {doing}: {message}"
