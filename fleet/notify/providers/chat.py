"""Chat services with their own message shapes: Google Chat (cards v1), Webex (markdown),
Telegram (MarkdownV2), Matrix (``m.room.message``), Lark (interactive card). As
``google_chat.go``, ``webex.go``, ``telegram.go``, ``matrix.go``, ``lark.go``."""

from __future__ import annotations

import hashlib
import urllib.parse
from typing import Any

from fleet.notify.event import Event
from fleet.notify.providers.base import (
    ProviderType,
    bearer,
    check_address,
    require,
    require_url,
    sorted_metadata,
)
from fleet.notify.request import Request, go_json
from fleet.notify.spec import ProviderSpec

TELEGRAM_API = "https://api.telegram.org"
_TELEGRAM_SPECIAL = "\\.-_[]()~>`#+=|{}!*"


def build_googlechat(event: Event, spec: ProviderSpec) -> list[Request]:
    text = event.message
    if event.severity == "error":
        text = f'<font color="#ff0000">{event.message}</font>'
    sections: list[dict[str, Any]] = [
        {"header": "", "widgets": [{"textParagraph": {"text": text}, "keyValue": None}]}
    ]
    if event.metadata:
        widgets = [
            {
                "textParagraph": None,
                "keyValue": {
                    "topLabel": k,
                    "content": v,
                    "contentMultiline": False,
                    "bottomLabel": None,
                    "icon": None,
                },
            }
            for k, v in sorted_metadata(event)
        ]
        sections.append({"header": "", "widgets": widgets})
    header = {
        "title": event.object_name,
        "subtitle": event.reporting_controller,
        "imageUrl": None,
        "imageStyle": None,
    }
    payload = {"cards": [{"header": header, "sections": sections}]}
    return [Request.post_json(spec.address, payload)]


def webex_markdown(event: Event) -> str:
    emoji = "💣" if event.severity == "error" else "✅"
    lines = [f"{emoji} **{event.object_name}**", event.message]
    lines += [f">**{k}**: {v}" for k, v in sorted_metadata(event)]
    return "\n".join(lines) + "\n"


def build_webex(event: Event, spec: ProviderSpec) -> list[Request]:
    payload: dict[str, str] = {}
    if spec.channel:
        payload["roomId"] = spec.channel
    payload["markdown"] = webex_markdown(event)
    return [Request.post_json(spec.address, payload, {"Authorization": f"Bearer {spec.token}"})]


def check_webex(spec: ProviderSpec) -> None:
    require_url(spec)
    require(spec, spec.channel, "channel (the Webex room id)")
    require(spec, spec.token, "token (the bot's access token)")


def telegram_escape(text: str) -> str:
    """MarkdownV2 wants these characters escaped outside entities."""
    return "".join(f"\\{c}" if c in _TELEGRAM_SPECIAL else c for c in text)


def build_telegram(event: Event, spec: ProviderSpec) -> list[Request]:
    emoji = "🚨" if event.severity == "error" else "💫"
    obj = event.involved_object
    heading = f"{emoji} {obj.kind.lower()}/{obj.name}/{obj.namespace}"
    metadata = "".join(
        f"\\- *{telegram_escape(k)}*: {telegram_escape(v)}\n" for k, v in sorted_metadata(event)
    )
    text = f"*{telegram_escape(heading)}*\n{telegram_escape(event.message)}\n{metadata}"
    chat_id, has_thread, thread = spec.channel.partition(":")
    payload: dict[str, str] = {"chat_id": chat_id}
    if has_thread:
        payload["message_thread_id"] = thread
    payload["text"] = text
    payload["parse_mode"] = "MarkdownV2"
    base = (spec.address or TELEGRAM_API).rstrip("/")
    return [Request.post_json(f"{base}/bot{spec.token}/sendMessage", payload)]


def check_telegram(spec: ProviderSpec) -> None:
    if spec.address:
        require_url(spec)
    require(spec, spec.channel, "channel (chat id or @channel)")
    require(spec, spec.token, "token (the bot token)")


def build_matrix(event: Event, spec: ProviderSpec) -> list[Request]:
    # The transaction id makes a retried PUT idempotent: the hash of the event's JSON.
    txn = hashlib.sha1(go_json(event.to_wire())).hexdigest()
    room = urllib.parse.quote(spec.channel, safe="!:@")  # as Flux sends it, "/" escaped
    url = f"{spec.address.rstrip('/')}/_matrix/client/r0/rooms/{room}/send/m.room.message/{txn}"
    emoji = "🚨" if event.severity == "error" else "💫"
    metadata = "".join(f"- {k}: {v}\n" for k, v in sorted_metadata(event))
    body = f"{emoji} {event.object_name}\n{event.message}\n{metadata}"
    payload = {"body": body, "msgtype": "m.text"}
    request = Request.post_json(url, payload, bearer(spec.token))
    return [Request("PUT", request.url, request.body, request.headers)]


def check_matrix(spec: ProviderSpec) -> None:
    require_url(spec, what="address (the homeserver URL)")
    require(spec, spec.channel, "channel (the room id)")
    require(spec, spec.token, "token (an access token)")


def build_lark(event: Event, spec: ProviderSpec) -> list[Request]:
    error = event.severity == "error"
    emoji, color = ("🚨", "red") if error else ("💫", "turquoise")
    message = f"**{event.message}**\n\n" + "".join(f"{k}: {v}\n" for k, v in sorted_metadata(event))
    payload = {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": f"{emoji} {event.object_name}"},
                "template": color,
            },
            "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": message}}],
        },
    }
    return [Request.post_json(spec.address, payload)]


GOOGLECHAT = ProviderType(
    "googlechat", build_googlechat, check_address, "Google Chat webhook: a cards v1 message"
)
WEBEX = ProviderType(
    "webex", build_webex, check_webex, "Webex messages API: markdown to the room in channel"
)
TELEGRAM = ProviderType(
    "telegram",
    build_telegram,
    check_telegram,
    "Telegram Bot API sendMessage (MarkdownV2) to the chat in channel",
)
MATRIX = ProviderType(
    "matrix", build_matrix, check_matrix, "Matrix client API: PUT m.room.message (m.text)"
)
LARK = ProviderType("lark", build_lark, check_address, "Lark custom bot webhook: a message card")
