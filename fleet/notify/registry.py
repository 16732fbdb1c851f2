"""Flux's provider ``type`` names and which of them this library implements.

``provider(type)`` is the only lookup: an unknown or unsupported type raises
``UnsupportedProvider`` with a message fit for a Provider's status.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleet.notify.errors import UnsupportedProvider
from fleet.notify.providers import (
    chat,
    commitstatus,
    generic,
    incident,
    msteams,
    observability,
    slack,
)
from fleet.notify.providers.base import ProviderType

SUPPORTED: Mapping[str, ProviderType] = {
    p.name: p
    for p in (
        slack.SLACK,
        slack.DISCORD,
        slack.ROCKET,
        msteams.MSTEAMS,
        chat.GOOGLECHAT,
        chat.WEBEX,
        chat.TELEGRAM,
        chat.MATRIX,
        chat.LARK,
        generic.GENERIC,
        generic.GENERIC_HMAC,
        incident.ALERTMANAGER,
        incident.PAGERDUTY,
        incident.OPSGENIE,
        observability.GRAFANA,
        observability.DATADOG,
        commitstatus.GITHUB,
        commitstatus.GITLAB,
        commitstatus.GITEA,
        commitstatus.BITBUCKET,
    )
}

NOT_SUPPORTED: Mapping[str, str] = {
    "azureeventhub": "needs the Azure Event Hubs AMQP client",
    "azuredevops": "Azure DevOps commit status is not implemented",
    "bitbucketserver": "Bitbucket Server/Data Center commit status is not implemented",
    "githubdispatch": "GitHub repository_dispatch is not implemented",
    "googlepubsub": "needs the Google Pub/Sub client",
    "sentry": "needs the Sentry SDK's envelope format",
    "nats": "needs a NATS client",
}
"""The rest of the v1beta3 ``Provider.spec.type`` enum, with why."""

FLUX_TYPES: tuple[str, ...] = tuple(sorted([*SUPPORTED, *NOT_SUPPORTED]))
"""Every type notification.toolkit.fluxcd.io/v1beta3 accepts."""


def provider(type_name: str) -> ProviderType:
    """The implementation of ``type_name``; ``UnsupportedProvider`` says why there is none."""
    found = SUPPORTED.get(type_name)
    if found is not None:
        return found
    if type_name in NOT_SUPPORTED:
        raise UnsupportedProvider(
            type_name,
            f"provider type {type_name!r} is not supported by fleet: {NOT_SUPPORTED[type_name]}",
        )
    raise UnsupportedProvider(
        type_name,
        f"unknown provider type {type_name!r}; Flux's types are {', '.join(FLUX_TYPES)}",
    )
