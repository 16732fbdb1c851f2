"""Every provider type delivers a real event over HTTP to a recording receiver on loopback, and
the request is checked against the format the service documents and notification-controller
sends: method, path, auth headers, signature, field names and types."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac
from collections.abc import Iterator

import anyio
import pytest

from fleet.notify import (
    Attempts,
    Delivery,
    Event,
    EventNotApplicable,
    HttpTransport,
    InvolvedObject,
    ProviderSpec,
    deliver,
)
from tests.notifyreceiver import Recorded, RecordingReceiver, recording_receiver

pytestmark = pytest.mark.timeout(60)

SHA = "5394cb7f48332b2de7c17dd8b8384bbc84b7e738"
UID = "7d0cdc51-ddcf-4743-b223-83ca5c699632"
WHEN = datetime.datetime(2026, 5, 1, 12, 0, 5, tzinfo=datetime.UTC)
FAILED = Event(
    involved_object=InvolvedObject(
        kind="Kustomization",
        name="apps",
        namespace="flux-system",
        uid=UID,
        api_version="kustomize.toolkit.fluxcd.io/v1",
    ),
    severity="error",
    timestamp=WHEN,
    message="Health check failed after 30s: Deployment/apps/web <InProgress>",
    reason="HealthCheckFailed",
    reporting_controller="kustomize-controller",
    metadata={"revision": f"main@sha1:{SHA}", "summary": "prod-eu"},
    reporting_instance="kustomize-controller-7c7b47f5f-8bhrp",
)
SUCCEEDED = dataclasses.replace(
    FAILED,
    severity="info",
    reason="ReconciliationSucceeded",
    message="Reconciliation finished in 2s",
)


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with recording_receiver() as running:
        yield running


def send(spec: ProviderSpec, event: Event = FAILED) -> Attempts:
    async def run() -> Attempts:
        transport = HttpTransport()
        try:
            return await deliver(Delivery.for_event("test", spec, event), transport)
        finally:
            await transport.aclose()

    return anyio.run(run)


def only(receiver: RecordingReceiver, path: str) -> Recorded:
    found = receiver.to(path)
    assert len(found) == 1, [(r.method, r.path) for r in receiver.requests]
    return found[0]


def test_slack_attachment_with_metadata_fields_and_bearer_token(
    receiver: RecordingReceiver,
) -> None:
    send(ProviderSpec("slack", f"{receiver.url}/services/T/B/X", channel="general", token="xoxb-1"))

    request = only(receiver, "/services/T/B/X")
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Bearer xoxb-1"
    body = request.json()
    assert body["channel"] == "general"
    assert body["username"] == "kustomize-controller", "defaults to the reporting controller"
    assert "text" not in body
    (attachment,) = body["attachments"]
    assert attachment["color"] == "danger"
    assert attachment["author_name"] == "kustomization/apps.flux-system"
    assert attachment["text"] == FAILED.message
    assert attachment["mrkdwn_in"] == ["text"]
    assert {"title": "summary", "value": "prod-eu", "short": False} in attachment["fields"]


def test_slack_chat_post_message_answer_ok_false_is_a_failure() -> None:
    from fleet.notify.providers import slack
    from fleet.notify.request import Response

    (request,) = slack.build_slack(FAILED, ProviderSpec("slack", slack.SLACK_API, token="t"))
    assert request.check is not None
    assert request.check(Response(200, b'{"ok": false, "error": "channel_not_found"}')) == (
        "Slack responded with error: channel_not_found"
    )
    assert request.check(Response(200, b'{"ok": true}')) is None


def test_discord_posts_slack_format_to_the_slack_endpoint(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("discord", f"{receiver.url}/api/webhooks/1/abc"), SUCCEEDED)

    body = only(receiver, "/api/webhooks/1/abc/slack").json()
    assert body["attachments"][0]["color"] == "good"
    assert body["username"] == "kustomize-controller"


def test_rocket_uses_hex_colors_and_the_configured_channel(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("rocket", f"{receiver.url}/hooks/x", channel="#ops", username="flux"))

    body = only(receiver, "/hooks/x").json()
    assert (body["channel"], body["username"]) == ("#ops", "flux")
    assert body["attachments"][0]["color"] == "#FF0000"


def test_msteams_adaptive_card(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("msteams", f"{receiver.url}/workflows/x/triggers/manual/paths/invoke"))

    body = only(receiver, "/workflows/").json()
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["msteams"] == {"width": "Full"}
    (container,) = card["body"]
    assert container["type"] == "Container"
    title, message, facts = container["items"]
    assert title == {
        "type": "TextBlock",
        "text": "kustomization/apps.flux-system",
        "size": "large",
        "weight": "bolder",
        "wrap": True,
    }
    assert message == {
        "type": "TextBlock",
        "text": FAILED.message,
        "color": "attention",
        "wrap": True,
    }
    assert facts["type"] == "FactSet"
    assert facts["facts"][0] == {"title": "summary", "value": "prod-eu"}, "summary comes first"
    assert facts["facts"][1:] == [{"title": "revision", "value": f"main@sha1:{SHA}"}]


def test_msteams_office_connector_url_gets_a_message_card() -> None:
    from fleet.notify.providers import msteams

    (request,) = msteams.build(
        FAILED, ProviderSpec("msteams", "https://acme.webhook.office.com/webhookb2/x")
    )
    assert request.body is not None
    body = Recorded("POST", "/", {}, {}, request.body).json()
    assert (body["@type"], body["themeColor"]) == ("MessageCard", "FF0000")
    assert body["sections"][0]["activitySubtitle"] == "kustomization/apps.flux-system"


def test_googlechat_card(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("googlechat", f"{receiver.url}/v1/spaces/AAA/messages?key=k&token=t"))

    request = only(receiver, "/v1/spaces/AAA/messages")
    assert request.query == {"key": ["k"], "token": ["t"]}
    (card,) = request.json()["cards"]
    assert card["header"]["title"] == "kustomization/apps.flux-system"
    assert card["header"]["subtitle"] == "kustomize-controller"
    message, metadata = card["sections"]
    text = message["widgets"][0]["textParagraph"]["text"]
    assert text == f'<font color="#ff0000">{FAILED.message}</font>'
    labels = [w["keyValue"]["topLabel"] for w in metadata["widgets"]]
    assert labels == ["revision", "summary"]
    assert metadata["widgets"][0]["keyValue"]["contentMultiline"] is False


def test_webex_markdown_to_the_room_with_bearer_token(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("webex", f"{receiver.url}/v1/messages", channel="room-1", token="bot"))

    request = only(receiver, "/v1/messages")
    assert request.headers["authorization"] == "Bearer bot"
    body = request.json()
    assert body["roomId"] == "room-1"
    assert body["markdown"] == (
        f"💣 **kustomization/apps.flux-system**\n{FAILED.message}\n"
        f">**revision**: main@sha1:{SHA}\n>**summary**: prod-eu\n"
    )


def test_telegram_send_message_markdown_v2_escaped(receiver: RecordingReceiver) -> None:
    spec = ProviderSpec("telegram", receiver.url, channel="-100123:42", token="123:ABC")
    send(spec, SUCCEEDED)

    request = only(receiver, "/bot123:ABC/sendMessage")
    body = request.json()
    assert body["chat_id"] == "-100123"
    assert body["message_thread_id"] == "42", "chat:thread targets a forum topic"
    assert body["parse_mode"] == "MarkdownV2"
    assert body["text"].startswith("*💫 kustomization/apps/flux\\-system*\n")
    assert "Reconciliation finished in 2s\n" in body["text"]
    assert "\\- *summary*: prod\\-eu\n" in body["text"]


def test_matrix_puts_a_text_message_with_a_transaction_id(receiver: RecordingReceiver) -> None:
    spec = ProviderSpec("matrix", receiver.url, channel="!room:example.org", token="syt_x")
    send(spec)

    (request,) = receiver.requests
    assert request.method == "PUT"
    prefix = "/_matrix/client/r0/rooms/!room:example.org/send/m.room.message/"
    assert request.path.startswith(prefix)
    assert len(request.path.removeprefix(prefix)) == 40, "a SHA-1 transaction id"
    assert request.headers["authorization"] == "Bearer syt_x"
    body = request.json()
    assert body["msgtype"] == "m.text"
    assert body["body"].startswith("🚨 kustomization/apps.flux-system\n")


def test_lark_interactive_card(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("lark", f"{receiver.url}/open-apis/bot/v2/hook/xyz"))

    body = only(receiver, "/open-apis/bot/v2/hook/xyz").json()
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["config"] == {"wide_screen_mode": True}
    assert card["header"]["template"] == "red"
    assert card["header"]["title"] == {
        "tag": "plain_text",
        "content": "🚨 kustomization/apps.flux-system",
    }
    (element,) = card["elements"]
    assert element["tag"] == "div" and element["text"]["tag"] == "lark_md"
    assert element["text"]["content"].startswith(f"**{FAILED.message}**\n\n")


def test_generic_posts_the_event_with_component_and_secret_headers(
    receiver: RecordingReceiver,
) -> None:
    send(ProviderSpec("generic", f"{receiver.url}/hook", headers={"X-Team": "platform"}))

    request = only(receiver, "/hook")
    assert request.headers["gotk-component"] == "kustomize-controller"
    assert request.headers["x-team"] == "platform"
    assert "x-signature" not in request.headers
    assert request.json() == {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": "flux-system",
            "name": "apps",
            "uid": UID,
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        },
        "severity": "error",
        "timestamp": "2026-05-01T12:00:05Z",
        "message": FAILED.message,
        "reason": "HealthCheckFailed",
        "metadata": {"revision": f"main@sha1:{SHA}", "summary": "prod-eu"},
        "reportingController": "kustomize-controller",
        "reportingInstance": "kustomize-controller-7c7b47f5f-8bhrp",
    }
    assert b"\\u003cInProgress\\u003e" in request.body, "Go's encoder escapes < and >"


def test_generic_hmac_signature_verifies_as_flux_documents(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("generic-hmac", f"{receiver.url}/hook", token="s3cr3t"))

    request = only(receiver, "/hook")
    algorithm, _, digest = request.headers["x-signature"].partition("=")
    assert algorithm == "sha256"
    expected = hmac.new(b"s3cr3t", request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(digest, expected)
    assert request.json()["reason"] == "HealthCheckFailed"


def test_alertmanager_firing_alert_with_labels_and_basic_auth(
    receiver: RecordingReceiver,
) -> None:
    spec = ProviderSpec(
        "alertmanager", f"{receiver.url}/api/v2/alerts", username="am", password="pw", token="t"
    )
    send(spec)

    request = only(receiver, "/api/v2/alerts")
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"am:pw").decode()
    (alert,) = request.json()
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "FluxKustomizationHealthcheckfailed",
        "severity": "error",
        "reason": "HealthCheckFailed",
        "kind": "Kustomization",
        "name": "apps",
        "namespace": "flux-system",
        "reportingcontroller": "kustomize-controller",
        "revision": f"main@sha1:{SHA}",
    }
    assert alert["annotations"] == {"message": FAILED.message, "summary": "prod-eu"}
    assert alert["startsAt"] == "2026-05-01T12:00:05Z"


def test_alertmanager_bearer_token_alone(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("alertmanager", f"{receiver.url}/api/v2/alerts", token="tok"))

    assert only(receiver, "/api/v2/alerts").headers["authorization"] == "Bearer tok"


def test_pagerduty_triggers_on_error_keyed_by_the_object_uid(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("pagerduty", f"{receiver.url}/ignored/path", channel="R0UT1NGKEY"))

    body = only(receiver, "/v2/enqueue").json()
    assert body["routing_key"] == "R0UT1NGKEY"
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == UID
    payload = body["payload"]
    assert payload["summary"] == "health check failed: kustomization/apps"
    assert payload["source"] == "Flux kustomize-controller"
    assert payload["severity"] == "error"
    assert payload["timestamp"] == "2026-05-01T12:00:05Z"
    assert (payload["component"], payload["group"]) == ("apps", "Kustomization")
    assert payload["custom_details"]["message"] == FAILED.message
    assert receiver.to("/v2/change") == []


def test_pagerduty_info_resolves_and_sends_a_change_event(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("pagerduty", receiver.url, channel="KEY"), SUCCEEDED)

    resolve = only(receiver, "/v2/enqueue").json()
    assert resolve == {"routing_key": "KEY", "event_action": "resolve", "dedup_key": UID}
    change = only(receiver, "/v2/change/enqueue").json()
    assert change["routing_key"] == "KEY"
    assert change["payload"]["summary"] == "reconciliation succeeded: kustomization/apps"
    assert change["payload"]["custom_details"]["metadata"]["summary"] == "prod-eu"


def test_opsgenie_alert_with_genie_key(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("opsgenie", f"{receiver.url}/v2/alerts", token="og-key"))

    request = only(receiver, "/v2/alerts")
    assert request.headers["authorization"] == "GenieKey og-key"
    body = request.json()
    assert body["message"] == "Kustomization/apps"
    assert body["description"] == FAILED.message
    assert body["details"] == {
        "revision": f"main@sha1:{SHA}",
        "summary": "prod-eu",
        "severity": "error",
    }


def test_grafana_annotation_tagged_flux(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("grafana", f"{receiver.url}/api/annotations", token="glsa"))

    request = only(receiver, "/api/annotations")
    assert request.headers["authorization"] == "Bearer glsa"
    body = request.json()
    assert body["when"] == int(WHEN.timestamp())
    assert body["text"] == "kustomization/apps.flux-system"
    assert body["tags"] == [
        "flux",
        "kustomize-controller",
        f"revision: main@sha1|{SHA}",
        "summary: prod-eu",
        "kind: Kustomization",
        "name: apps",
        "namespace: flux-system",
    ]


def test_grafana_basic_auth_without_token(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("grafana", f"{receiver.url}/api/annotations", username="u", password="p"))

    expected = "Basic " + base64.b64encode(b"u:p").decode()
    assert only(receiver, "/api/annotations").headers["authorization"] == expected


def test_datadog_event_with_api_key_and_lowercased_tags(receiver: RecordingReceiver) -> None:
    send(ProviderSpec("datadog", receiver.url, token="dd-key"))

    request = only(receiver, "/api/v1/events")
    assert request.headers["dd-api-key"] == "dd-key"
    body = request.json()
    assert body["title"] == "Events from the Kustomization apps/flux-system"
    assert body["text"] == FAILED.message
    assert body["alert_type"] == "error"
    assert body["source_type_name"] == "fluxcd"
    assert body["date_happened"] == int(WHEN.timestamp())
    assert body["tags"] == [
        "flux_reporting_controller:kustomize-controller",
        "flux_reason:healthcheckfailed",
        "kube_kind:kustomization",
        "kube_name:apps",
        "kube_namespace:flux-system",
        f"revision:main@sha1:{SHA}",
        "summary:prod-eu",
    ]


def commit_status_spec(type_: str, receiver: RecordingReceiver, token: str = "tok") -> ProviderSpec:
    return ProviderSpec(
        type_, f"{receiver.url}/acme/fleet.git", token=token, provider_uid="0c9c2e41-aaaa-bbbb"
    )


def test_github_lists_then_sets_the_commit_status(receiver: RecordingReceiver) -> None:
    receiver.answer("/api/v3/repos/acme/fleet/commits/", body=[])
    send(commit_status_spec("github", receiver))

    listed = only(receiver, f"/api/v3/repos/acme/fleet/commits/{SHA}/statuses")
    assert listed.method == "GET" and listed.query == {"per_page": ["50"]}
    created = only(receiver, f"/api/v3/repos/acme/fleet/statuses/{SHA}")
    assert created.method == "POST"
    assert created.headers["authorization"] == "Bearer tok"
    assert created.headers["accept"] == "application/vnd.github.v3+json"
    assert created.json() == {
        "state": "failure",
        "description": "health check failed",
        "context": "kustomization/apps/0c9c2e41",
    }


def test_github_does_not_post_the_same_status_twice(receiver: RecordingReceiver) -> None:
    existing = {"context": "kustomization/apps/0c9c2e41", "state": "success"}
    existing["description"] = "reconciliation succeeded"
    receiver.answer("/api/v3/repos/acme/fleet/commits/", body=[existing])

    done = send(commit_status_spec("github", receiver), SUCCEEDED)

    assert done.stopped_early
    assert receiver.to("/api/v3/repos/acme/fleet/statuses/") == []


def test_gitlab_sets_the_status_with_private_token(receiver: RecordingReceiver) -> None:
    receiver.answer("/api/v4/projects/acme%2Ffleet/repository/", body=[])
    send(commit_status_spec("gitlab", receiver), SUCCEEDED)

    listed = only(receiver, "/api/v4/projects/acme%2Ffleet/repository/commits/")
    assert listed.query == {"name": ["kustomization/apps/0c9c2e41"]}
    created = only(receiver, f"/api/v4/projects/acme%2Ffleet/statuses/{SHA}")
    assert created.headers["private-token"] == "tok"
    assert created.json() == {
        "state": "success",
        "name": "kustomization/apps/0c9c2e41",
        "description": "reconciliation succeeded",
    }


def test_gitea_sets_the_status_with_token_auth(receiver: RecordingReceiver) -> None:
    receiver.answer("/api/v1/repos/acme/fleet/commits/", body=[])
    send(commit_status_spec("gitea", receiver))

    created = only(receiver, f"/api/v1/repos/acme/fleet/statuses/{SHA}")
    assert created.headers["authorization"] == "token tok"
    assert created.json() == {
        "state": "failure",
        "target_url": "",
        "description": "health check failed",
        "context": "kustomization/apps/0c9c2e41",
    }


def test_gitea_marks_progressing_as_pending(receiver: RecordingReceiver) -> None:
    receiver.answer("/api/v1/repos/acme/fleet/commits/", body=[])
    progressing = dataclasses.replace(SUCCEEDED, reason="Progressing")
    send(commit_status_spec("gitea", receiver), progressing)

    assert only(receiver, "/api/v1/repos/acme/fleet/statuses/").json()["state"] == "pending"


def test_bitbucket_build_status_keyed_by_sha1_with_basic_auth(receiver: RecordingReceiver) -> None:
    key = hashlib.sha1(b"kustomization/apps/0c9c2e41").hexdigest()
    receiver.answer(f"/2.0/repositories/acme/fleet/commit/{SHA}/statuses/build/", status=404)
    send(commit_status_spec("bitbucket", receiver, token="bob:app-pass"))

    looked_up = only(receiver, f"/2.0/repositories/acme/fleet/commit/{SHA}/statuses/build/{key}")
    assert looked_up.method == "GET"
    posts = [r for r in receiver.requests if r.method == "POST"]
    (created,) = posts
    assert created.path == f"/2.0/repositories/acme/fleet/commit/{SHA}/statuses/build"
    assert created.headers["authorization"] == "Basic " + base64.b64encode(b"bob:app-pass").decode()
    assert created.json() == {
        "key": key,
        "url": "https://bitbucket.org",
        "state": "FAILED",
        "name": "kustomization/apps",
        "description": "health check failed",
    }


@pytest.mark.parametrize("type_", ["github", "gitlab", "bitbucket"])
def test_commit_status_skips_progressing_events(type_: str, receiver: RecordingReceiver) -> None:
    progressing = dataclasses.replace(SUCCEEDED, reason="Progressing")
    send(commit_status_spec(type_, receiver, token="u:p"), progressing)

    assert receiver.requests == []


def test_commit_status_without_revision_is_not_applicable() -> None:
    event = dataclasses.replace(FAILED, metadata={})
    spec = ProviderSpec("github", "https://github.com/acme/fleet", token="t")

    with pytest.raises(EventNotApplicable, match="missing revision metadata"):
        Delivery.for_event("test", spec, event)


def test_every_supported_type_has_a_delivery_test_here() -> None:
    from fleet.notify import SUPPORTED

    names = " ".join(name for name in globals() if name.startswith("test_"))
    untested = [t for t in SUPPORTED if f"test_{t.replace('-', '_')}_" not in names]
    assert untested == []
