"""The notification library's exceptions; nothing else escapes it (httpx's are translated)."""

from __future__ import annotations


class NotifyError(Exception):
    """Base of everything the notification library raises."""


class InvalidProvider(NotifyError):
    """A Provider spec that cannot be used as written; the message names the field."""


class UnsupportedProvider(InvalidProvider):
    """A Flux provider type this library does not implement (yet)."""

    def __init__(self, provider_type: str, message: str) -> None:
        super().__init__(message)
        self.provider_type = provider_type


class EventNotApplicable(NotifyError):
    """The event cannot be turned into this provider's request (a commit status without a
    revision, say); Flux reports these the same way and sends nothing."""


class DeliveryFailed(NotifyError):
    """A request was refused or could not be sent, after the retries it was worth."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status of the last answer, None when there was none."""
        self.transient = transient
        """Whether trying again later could help (transport errors, 5xx, 429)."""
