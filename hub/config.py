"""The hub's configuration file (``fleet hub serve --config hub.yaml``).

```yaml
listen: 0.0.0.0:8443
database: postgresql://hub@db/fleet     # default sqlite:///hub.db
staleAfter: 90s
tlsCert: /etc/fleet/tls.crt
tlsKey: /etc/fleet/tls.key
webhooks:
  github: {secretFile: /etc/fleet/github-secret}
  gitlab: {token: "..."}
  generic: {secret: "..."}
promotion:                               # promotion waves (fleet.yaml); optional
  repo: ssh://git@git.example.com/fleet.git
  branch: main
  interval: 10s
  auth: {sshKeyFile: /etc/fleet/deploy-key, knownHostsFile: /etc/fleet/known_hosts}
notifications:
  - name: prod-alerts
    type: slack                          # webhook (the hub's JSON), or any Flux provider type
    urlFile: /etc/fleet/slack-url        # the provider's address (url, urlFile)
    severity: warning                    # at least this severity
    labels: {env: prod}                  # every label must match
    clusters: ["prod-*"]                 # any glob must match; empty: all
    reasons: [ReconcileFailed, ClusterStale]
    dedupeWindow: 10m
    rateLimit: {count: 3, per: 10m}
  - name: oncall
    type: pagerduty                      # the fields of a Flux Provider (docs/notifications.md)
    url: https://events.pagerduty.com
    channel: <routing key>               # also: username, tokenFile, passwordFile, proxy,
    severity: error                      # caFile, summary, eventMetadata, secretDir
limits:                                  # per hub process; these are the defaults
  ingestPerSecond: 5                     # reports per token, sustained (429 beyond)
  ingestBurst: 30
  streamsPerToken: 8
  streams: 1000
  connections: 4096
  headerTimeout: 10s
  bodyTimeout: 30s
  idleTimeout: 5s
```

Durations are Go durations, as in Flux objects. Secrets may be given inline or as a file
(``secretFile``, ``urlFile``), so that the file itself can live in a Kubernetes Secret.
Command-line flags override the file.
"""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from typing import Literal

import pydantic
import yaml
from pydantic.alias_generators import to_camel

from fleet import notify
from fleet.models.common import Duration, PositiveDuration

Severity = Literal["info", "warning", "error"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}
MIB = 1024 * 1024


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message says where."""


class ConfigModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid"
    )


def _secret(inline: str | None, path: Path | None, what: str) -> str:
    if (inline is None) == (path is None):
        raise ConfigError(f"{what}: set exactly one of the inline value or the file")
    if path is not None:
        try:
            return path.read_text().strip()
        except OSError as error:
            raise ConfigError(f"{what}: cannot read {path}: {error}") from error
    assert inline is not None
    return inline


class SignedWebhook(ConfigModel):
    """A shared HMAC secret (GitHub, generic)."""

    secret: str | None = pydantic.Field(default=None, repr=False)
    secret_file: Path | None = None

    def resolve(self, what: str) -> str:
        return _secret(self.secret, self.secret_file, what)


class TokenWebhook(ConfigModel):
    """A shared token sent as a header (GitLab)."""

    token: str | None = pydantic.Field(default=None, repr=False)
    token_file: Path | None = None

    def resolve(self, what: str) -> str:
        return _secret(self.token, self.token_file, what)


class WebhooksConfig(ConfigModel):
    github: SignedWebhook | None = None
    gitlab: TokenWebhook | None = None
    generic: SignedWebhook | None = None
    replay_window: PositiveDuration = datetime.timedelta(minutes=5)
    """How old a generic delivery's timestamp may be; its id is remembered this long."""


class HubLimits(ConfigModel):
    """What one token, and all of them together, may cost this hub process."""

    ingest_per_second: float = pydantic.Field(default=5.0, gt=0, le=10_000)
    """Reports per second per token, sustained: an agent sends one per change and a
    heartbeat every 30 s, so 5/s is far above any honest agent and cheap for the hub."""
    ingest_burst: int = pydantic.Field(default=30, ge=1, le=100_000)
    """Reports a token may send at once before the rate applies (an agent's restart)."""
    streams_per_token: int = pydantic.Field(default=8, ge=1)
    """Open streams per token: an agent holds one command stream, a TUI one change stream."""
    streams: int = pydantic.Field(default=1000, ge=1)
    """Open streams in total, whatever the tokens."""
    connections: int = pydantic.Field(default=4096, ge=16)
    """Connections at once; beyond it new requests get 503 (uvicorn's limit)."""
    header_timeout: PositiveDuration = datetime.timedelta(seconds=10)
    """A connection that has not sent a whole request head within this is closed."""
    body_timeout: PositiveDuration = datetime.timedelta(seconds=30)
    """A request body that has not arrived within this gets 408."""
    idle_timeout: PositiveDuration = datetime.timedelta(seconds=5)
    """A kept-alive connection with no new request within this is closed."""


class RateLimit(ConfigModel):
    count: int = pydantic.Field(default=3, ge=1)
    per: PositiveDuration = datetime.timedelta(minutes=10)


LEGACY_TYPES = ("webhook",)
"""The hub's own JSON format; ``slack`` is also the hub's format unless ``format: flux``."""


class NotificationTarget(ConfigModel):
    """Where alerts go, and which of them. ``type`` is ``webhook`` or a Flux provider type;
    the provider fields mean what they mean on a Flux ``Provider`` (docs/notifications.md)."""

    name: str
    type: str
    url: str | None = pydantic.Field(default=None, repr=False)
    """The provider's address (a webhook URL, an API endpoint, a repository URL)."""
    url_file: Path | None = None
    headers: dict[str, str] = pydantic.Field(default_factory=dict, repr=False)
    """Extra HTTP headers for ``webhook`` and the generic types (an Authorization header)."""
    format: Literal["fleet", "flux"] = "fleet"
    """For ``slack``: the hub's message (default, as before) or Flux's attachment."""
    channel: str = ""
    username: str = ""
    token: str | None = pydantic.Field(default=None, repr=False)
    token_file: Path | None = None
    password: str | None = pydantic.Field(default=None, repr=False)
    password_file: Path | None = None
    proxy: str = pydantic.Field(default="", repr=False)
    ca_file: Path | None = None
    """PEM CA certificates to trust for this provider (a Flux certSecretRef's ``ca.crt``)."""
    secret_dir: Path | None = None
    """A mounted Flux Provider Secret: files ``address``, ``token``, ``username``,
    ``password``, ``headers`` (YAML), ``proxy``, ``ca.crt``; they override the fields above,
    as the Secret's keys override a Provider's spec."""
    summary: str = ""
    """Added to every event's metadata as ``summary``, like an Alert's ``spec.summary``."""
    event_metadata: dict[str, str] = pydantic.Field(default_factory=dict)
    """Added to every event's metadata, like an Alert's ``spec.eventMetadata``."""
    severity: Severity = "info"
    """The lowest severity sent: info < warning < error."""
    clusters: list[str] = pydantic.Field(default_factory=list)
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    reasons: list[str] = pydantic.Field(default_factory=list)
    exclude_reasons: list[str] = pydantic.Field(default_factory=list)
    dedupe_window: PositiveDuration = datetime.timedelta(minutes=10)
    """The same alert (cluster, unit, reason, message) again within this is dropped."""
    rate_limit: RateLimit = pydantic.Field(default_factory=RateLimit)
    """At most ``count`` alerts per (cluster, unit, reason) per ``per``: a flapping unit
    cannot flood a channel; what was held back is counted in the next one sent."""
    timeout: PositiveDuration = datetime.timedelta(seconds=10)
    """For one alert's delivery, retries included."""

    @pydantic.field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value in LEGACY_TYPES:
            return value
        try:
            notify.provider(value)
        except notify.UnsupportedProvider as error:
            raise ValueError(str(error)) from None
        return value

    @pydantic.model_validator(mode="after")
    def _format_is_for_slack(self) -> NotificationTarget:
        if self.format != "fleet" and self.type != "slack":
            raise ValueError("format is only for type slack")
        return self

    def resolve_url(self) -> str:
        return _secret(self.url, self.url_file, f"notification {self.name!r} url")

    def provider_spec(self) -> notify.ProviderSpec:
        """The provider's settings with every file read; ``ConfigError`` names the target
        and the field when one is missing or unreadable."""
        what = f"notification {self.name!r}"
        secret = _secret_dir(self.secret_dir, what) if self.secret_dir else {}
        address = secret.get("address") or _optional(self.url, self.url_file, f"{what} url")
        headers = dict(self.headers)
        if "headers" in secret:
            try:
                loaded = yaml.safe_load(secret["headers"]) or {}
            except yaml.YAMLError as error:
                raise ConfigError(f"{what}: secretDir headers: {error}") from error
            if not isinstance(loaded, dict):
                raise ConfigError(f"{what}: secretDir headers must be a YAML map")
            headers.update({str(k): str(v) for k, v in loaded.items()})
        ca = secret.get("ca.crt", "")
        if not ca and self.ca_file is not None:
            ca = _read(self.ca_file, f"{what} caFile")
        spec = notify.ProviderSpec(
            type=self.type,
            address=address,
            channel=self.channel,
            username=secret.get("username") or self.username,
            token=secret.get("token") or _optional(self.token, self.token_file, f"{what} token"),
            password=secret.get("password")
            or _optional(self.password, self.password_file, f"{what} password"),
            headers=headers,
            proxy=secret.get("proxy") or self.proxy,
            timeout=self.timeout,
            ca_pem=ca,
            provider_uid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"fleet-hub:{self.name}")),
        )
        if self.type in LEGACY_TYPES or (self.type == "slack" and self.format == "fleet"):
            if not spec.address:
                raise ConfigError(f"{what}: url: set exactly one of the inline value or the file")
            return spec
        try:
            notify.provider(self.type).check(spec)
        except notify.InvalidProvider as error:
            raise ConfigError(f"{what}: {error}") from error
        return spec


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as error:
        raise ConfigError(f"{what}: cannot read {path}: {error}") from error


def _optional(inline: str | None, path: Path | None, what: str) -> str:
    """Like ``_secret`` but both unset is fine (the provider decides whether it needs it)."""
    if inline is None and path is None:
        return ""
    return _secret(inline, path, what)


SECRET_KEYS = ("address", "token", "username", "password", "headers", "proxy", "ca.crt")


def _secret_dir(path: Path, what: str) -> dict[str, str]:
    if not path.is_dir():
        raise ConfigError(f"{what}: secretDir {path} is not a directory")
    found: dict[str, str] = {}
    for key in SECRET_KEYS:
        file = path / key
        if file.is_file():
            found[key] = _read(file, f"{what} secretDir")
    return found


class GitCredentials(ConfigModel):
    """How the promoter authenticates to the fleet repository (at most one way)."""

    token_file: Path | None = None
    """An HTTPS access token, sent as the basic-auth password (as Flux does)."""
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    """Required with ``sshKeyFile``: the server's host key is always verified."""
    secret_dir: Path | None = None
    """A mounted Flux Git Secret: one file per key (username, password, identity...)."""

    @pydantic.model_validator(mode="after")
    def _one_way(self) -> GitCredentials:
        ways = [self.token_file, self.ssh_key_file, self.secret_dir]
        if sum(way is not None for way in ways) > 1:
            raise ValueError("set one of tokenFile, sshKeyFile or secretDir")
        if self.ssh_key_file is not None and self.known_hosts_file is None:
            raise ValueError("sshKeyFile needs knownHostsFile")
        return self


class PromotionConfig(ConfigModel):
    """The promoter: moves wave refs of the fleet repository as ``fleet.yaml`` says."""

    repo: str
    """The fleet repository's Git URL; the hub needs push access to its wave refs."""
    branch: str = "main"
    """The source branch: every new revision enters the first waves from here."""
    interval: PositiveDuration = datetime.timedelta(seconds=10)
    """How often the refs are fetched; a changed report is evaluated at once anyway."""
    records_branch: str = "fleet/promotions"
    """Where every promotion, approval, pause, halt and rollback is committed."""
    cache_dir: Path | None = None
    """The promoter's Git mirrors; default ``~/.cache/fleet/hub``."""
    auth: GitCredentials = pydantic.Field(default_factory=GitCredentials)
    reconcile: bool = True
    """Ask a wave's agents to fetch at once after its ref moved (over their command streams),
    so promotions and rollbacks do not wait for the agents' fetch interval."""


class HubConfig(ConfigModel):
    listen: str = "127.0.0.1:8080"
    database: str = "sqlite:///hub.db"
    stale_after: PositiveDuration = datetime.timedelta(seconds=90)
    """Three missed heartbeats at the agents' default 30 s."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_report_bytes: int = pydantic.Field(default=MIB, ge=1024)
    """Reports larger than this get 413; a full report within the schema's limits fits."""
    stream_keepalive: PositiveDuration = datetime.timedelta(seconds=15)
    """Comment lines on idle streams, so proxies and agents see the connection alive."""
    stream_poll: PositiveDuration = datetime.timedelta(seconds=2)
    """How soon a stream sees what another replica wrote (same-replica changes are instant)."""
    sweep_interval: PositiveDuration | None = None
    """How often stale clusters are looked for; default: a third of ``staleAfter``, <= 10 s."""
    event_retention: PositiveDuration = datetime.timedelta(days=7)
    report_history: int = pydantic.Field(default=10, ge=1, le=1000)
    """Changed reports kept per cluster (a report is ~5 KB; heartbeats are not kept)."""
    token_cache_ttl: Duration = datetime.timedelta(seconds=5)
    """How long a checked token is trusted without asking the database again: a revoked
    token is refused by every replica within this time. 0 looks up every request."""
    notifications: list[NotificationTarget] = pydantic.Field(default_factory=list)
    webhooks: WebhooksConfig = pydantic.Field(default_factory=WebhooksConfig)
    promotion: PromotionConfig | None = None
    """Promotion waves; without it the hub only aggregates health."""
    limits: HubLimits = pydantic.Field(default_factory=HubLimits)

    @pydantic.model_validator(mode="after")
    def _tls_pair(self) -> HubConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tlsCert and tlsKey go together")
        names = [target.name for target in self.notifications]
        if len(names) != len(set(names)):
            raise ValueError("notification target names must be unique")
        return self

    @property
    def effective_sweep_interval(self) -> float:
        if self.sweep_interval is not None:
            return self.sweep_interval.total_seconds()
        return max(0.2, min(self.stale_after.total_seconds() / 3, 10.0))

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"listen {self.listen!r} is not host:port")
        return host.strip("[]") or "0.0.0.0", int(port)


def load_config(path: Path) -> HubConfig:
    """Read and validate a hub config file; errors name the file and the field."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: {error}") from error
    try:
        return HubConfig.model_validate(data)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
