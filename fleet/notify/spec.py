"""A Provider's settings once its Secrets are read: what a provider builds requests from.

Field meanings are Flux's (notification.toolkit.fluxcd.io/v1beta3 ``Provider`` with the keys
of its ``secretRef``: ``address``, ``token``, ``username``, ``password``, ``headers``,
``proxy``; ``certSecretRef``'s ``ca.crt``). Whoever reads the Secrets resolves the overrides
(a Secret's ``address`` wins over ``spec.address``) before building this.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_TIMEOUT = datetime.timedelta(seconds=15)
"""Flux's ``Provider.GetTimeout`` default."""


@dataclass(frozen=True)
class ProviderSpec:
    type: str
    address: str = ""
    channel: str = ""
    username: str = ""
    token: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    proxy: str = field(default="", repr=False)
    timeout: datetime.timedelta = DEFAULT_TIMEOUT
    """For the whole delivery, retries included (Flux puts it on the request's context)."""
    ca_pem: str = field(default="", repr=False)
    """PEM CA certificates to trust instead of the system ones (``ca.crt``)."""
    provider_uid: str = ""
    """The Provider's ``metadata.uid``: its first segment makes commit-status contexts unique
    per cluster."""
    commit_status: str = ""
    """A precomputed commit status id (Flux's ``commitStatusExpr`` result); empty: the
    default ``<kind>/<name>/<uid prefix>``."""

    def describe(self) -> str:
        """For messages: the type and the address without credentials or query."""
        address = self.address.split("?", 1)[0]
        if "@" in address.split("//", 1)[-1].split("/", 1)[0]:
            scheme, _, rest = address.partition("//")
            address = f"{scheme}//***@{rest.split('@', 1)[1]}"
        return f"{self.type} {address}".strip()
