"""Slack and the services that take Slack's attachment format: Discord (``/slack`` endpoint)
and Rocket.Chat. As notification-controller's ``slack.go``, ``discord.go``, ``rocket.go``."""

from __future__ import annotations

import urllib.parse
from typing import Any

from fleet.notify.event import Event
from fleet.notify.providers.base import ProviderType, bearer, check_address, sorted_metadata
from fleet.notify.request import Request, Response
from fleet.notify.spec import ProviderSpec

SLACK_API = "https://slack.com/api/chat.postMessage"


def _attachment(event: Event, color: str) -> dict[str, Any]:
    return {
        "color": color,
        "author_name": event.object_name,
        "text": event.message,
        "mrkdwn_in": ["text"],
        "fields": [{"title": k, "value": v, "short": False} for k, v in sorted_metadata(event)],
    }


def _payload(channel: str, username: str, attachment: dict[str, Any]) -> dict[str, Any]:
    """``SlackPayload``: channel and username always present, icons empty, no ``text``."""
    return {
        "channel": channel,
        "username": username,
        "icon_url": "",
        "icon_emoji": "",
        "attachments": [attachment],
    }


def _slack_api_answer(response: Response) -> str | None:
    """chat.postMessage answers 200 with ``{"ok": false, "error": ...}`` on failure."""
    body = response.json()
    if not isinstance(body, dict):
        return "Slack answered with a body that is not JSON"
    if body.get("ok") is True:
        return None
    return f"Slack responded with error: {body.get('error', '')}"


def build_slack(event: Event, spec: ProviderSpec) -> list[Request]:
    color = "danger" if event.severity == "error" else "good"
    payload = _payload(
        spec.channel, spec.username or event.reporting_controller, _attachment(event, color)
    )
    check = _slack_api_answer if spec.address == SLACK_API else None
    return [Request.post_json(spec.address, payload, bearer(spec.token), check=check)]


def discord_url(address: str) -> str:
    """Discord takes Slack's format at the webhook URL plus ``/slack``."""
    if address.endswith("/slack"):
        return address
    parts = urllib.parse.urlsplit(address)
    path = parts.path.rstrip("/") + "/slack"
    return urllib.parse.urlunsplit(parts._replace(path=path))


def build_discord(event: Event, spec: ProviderSpec) -> list[Request]:
    color = "danger" if event.severity == "error" else "good"
    # Discord's payload has no channel value (the webhook decides), but the field is sent.
    payload = _payload("", spec.username or event.reporting_controller, _attachment(event, color))
    return [Request.post_json(discord_url(spec.address), payload)]


def build_rocket(event: Event, spec: ProviderSpec) -> list[Request]:
    color = "#FF0000" if event.severity == "error" else "#0076D7"
    payload = _payload(spec.channel, spec.username, _attachment(event, color))
    return [Request.post_json(spec.address, payload)]


SLACK = ProviderType(
    "slack",
    build_slack,
    check_address,
    "Slack incoming webhook or chat.postMessage (token as Bearer): one attachment",
)
DISCORD = ProviderType(
    "discord", build_discord, check_address, "Discord webhook, Slack format at <address>/slack"
)
ROCKET = ProviderType("rocket", build_rocket, check_address, "Rocket.Chat incoming webhook")
