"""Microsoft Teams: an Adaptive Card (version 1.4) for Workflows webhooks, the old
``MessageCard`` for Office 365 connector URLs (``*.webhook.office.com``), as ``teams.go``."""

from __future__ import annotations

import urllib.parse
from typing import Any

from fleet.notify.event import METADATA_SUMMARY, Event
from fleet.notify.providers.base import ProviderType, check_address, sorted_metadata
from fleet.notify.request import Request
from fleet.notify.spec import ProviderSpec

ADAPTIVE_CARD_VERSION = "1.4"
"""The newest version Teams renders."""


def uses_connector(address: str) -> bool:
    host = urllib.parse.urlsplit(address).hostname or ""
    return host.endswith(".webhook.office.com")


def adaptive_card(event: Event) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "TextBlock", "text": event.message}
    if event.severity == "error":
        message["color"] = "attention"
    message["wrap"] = True
    facts = []
    if METADATA_SUMMARY in event.metadata:
        facts.append({"title": METADATA_SUMMARY, "value": event.metadata[METADATA_SUMMARY]})
    facts += [{"title": k, "value": v} for k, v in sorted_metadata(event) if k != METADATA_SUMMARY]
    fact_set: dict[str, Any] = {"type": "FactSet"}
    if facts:
        fact_set["facts"] = facts
    title = {
        "type": "TextBlock",
        "text": event.object_name,
        "size": "large",
        "weight": "bolder",
        "wrap": True,
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": ADAPTIVE_CARD_VERSION,
                    "body": [{"type": "Container", "items": [title, message, fact_set]}],
                    "msteams": {"width": "Full"},
                },
            }
        ],
    }


def message_card(event: Event) -> dict[str, Any]:
    return {
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": "FF0000" if event.severity == "error" else "0076D7",
        "summary": event.object_name,
        "sections": [
            {
                "activityTitle": event.message,
                "activitySubtitle": event.object_name,
                "facts": [{"name": k, "value": v} for k, v in sorted_metadata(event)],
            }
        ],
    }


def build(event: Event, spec: ProviderSpec) -> list[Request]:
    payload = message_card(event) if uses_connector(spec.address) else adaptive_card(event)
    return [Request.post_json(spec.address, payload)]


MSTEAMS = ProviderType(
    "msteams",
    build,
    check_address,
    "Teams Workflows webhook: Adaptive Card 1.4 (MessageCard for *.webhook.office.com)",
)
