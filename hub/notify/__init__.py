"""Alerts from what clusters report, filtered, deduplicated, rate-limited and delivered.

``alerts`` derives alerts from an ingested report (pure), ``policy`` decides which target
gets which alert and when to hold one back (pure), ``flux`` turns an alert into the Flux
event ``fleet.notify`` speaks, ``delivery`` builds each target's request (any Flux provider
type, or the hub's own Slack and JSON formats) and hands it to ``fleet.notify.Notifier``,
which posts in the background, never on the ingest path.
"""

from hub.notify.alerts import Alert, alerts_from_report, stale_alert
from hub.notify.delivery import Dispatcher, generic_payload, slack_payload
from hub.notify.policy import NotificationGate, Verdict, matches

__all__ = [
    "Alert",
    "Dispatcher",
    "NotificationGate",
    "Verdict",
    "alerts_from_report",
    "generic_payload",
    "matches",
    "slack_payload",
    "stale_alert",
]
