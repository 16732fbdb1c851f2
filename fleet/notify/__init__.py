"""Notifications to the services Flux's notification-controller speaks, from one library
that the hub uses now and the agent's Provider/Alert objects will use.

- ``Event`` / ``InvolvedObject``: Flux's ``eventv1.Event``; ``event_key`` its identity.
- ``ProviderSpec``: a Provider's settings with its Secrets resolved.
- ``registry.provider(type)``: the ``ProviderType`` for a Flux type name (``check`` a spec,
  ``build`` an event into ``Request``s, pure); ``UnsupportedProvider`` for the rest.
- ``Delivery.for_event`` + ``Notifier.submit``: send in the background with retries,
  timeouts and a duplicate window; ``deliver`` sends one delivery and waits.
"""

from fleet.notify.delivery import Attempts, Delivery, RetryPolicy, deliver
from fleet.notify.errors import (
    DeliveryFailed,
    EventNotApplicable,
    InvalidProvider,
    NotifyError,
    UnsupportedProvider,
)
from fleet.notify.event import Event, InvolvedObject, Severity, event_key
from fleet.notify.notifier import Notifier, Outcome
from fleet.notify.providers.base import ProviderType
from fleet.notify.registry import FLUX_TYPES, NOT_SUPPORTED, SUPPORTED, provider
from fleet.notify.request import Request, Response
from fleet.notify.spec import ProviderSpec
from fleet.notify.transport import HttpTransport, Transport

__all__ = [
    "FLUX_TYPES",
    "NOT_SUPPORTED",
    "SUPPORTED",
    "Attempts",
    "Delivery",
    "DeliveryFailed",
    "Event",
    "EventNotApplicable",
    "HttpTransport",
    "InvalidProvider",
    "InvolvedObject",
    "Notifier",
    "NotifyError",
    "Outcome",
    "ProviderSpec",
    "ProviderType",
    "Request",
    "Response",
    "RetryPolicy",
    "Severity",
    "Transport",
    "UnsupportedProvider",
    "deliver",
    "event_key",
    "provider",
]
