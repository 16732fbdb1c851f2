"""The promoter's Git edge: read the fleet repository's refs and fleet.yaml, move wave refs,
commit records. Blocking (pygit2); the promoter calls it from worker threads.

Source errors stay ``fleet.source`` errors; ``Snapshot`` turns the read side into data
(an ``error`` instead of an exception), since a fleet repository that cannot be read or a
fleet.yaml that does not validate halts promotion rather than the hub.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from fleet.models.errors import ManifestError
from fleet.models.fleetconfig import FLEET_FILE, WAVE_REF_PREFIX, FleetConfig, load_fleet_config
from fleet.source import GitAuth, SourceError
from fleet.source.mirror import RefMirror
from fleet.source.push import BranchWriter
from hub.config import ConfigError, PromotionConfig
from hub.promotion import records
from hub.promotion.observe import wave_refs
from hub.store.promotions import Entry

AUTHOR = ("fleet hub", "fleet-hub@fleet.invalid")


@dataclass
class Snapshot:
    """The fleet repository as last fetched."""

    head: str | None = None
    """The source branch's commit."""
    refs: dict[str, str] = field(default_factory=dict)
    """Wave and batch refs (and the source branch) -> commit."""
    config: FleetConfig | None = None
    """fleet.yaml at ``head``; None when it is missing or invalid (see ``error``)."""
    error: str | None = None
    fetched_at: float = 0.0


def auth_of(config: PromotionConfig) -> GitAuth:
    """The configured credentials; ``ConfigError`` when a file cannot be read or used."""
    credentials = config.auth
    try:
        if credentials.token_file is not None:
            return GitAuth.token(credentials.token_file.read_text().strip())
        if credentials.ssh_key_file is not None:
            assert credentials.known_hosts_file is not None
            return GitAuth.ssh(credentials.ssh_key_file, credentials.known_hosts_file)
        if credentials.secret_dir is not None:
            return GitAuth.from_directory(credentials.secret_dir)
    except (OSError, SourceError) as error:
        raise ConfigError(f"promotion.auth: {error}") from None
    return GitAuth.none()


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "fleet" / "hub"


class FleetRepository:
    def __init__(self, config: PromotionConfig) -> None:
        self.config = config
        self.source_ref = f"refs/heads/{config.branch}"
        auth = auth_of(config)
        cache = config.cache_dir or default_cache_dir()
        try:
            self.mirror = RefMirror(config.repo, auth, cache_dir=cache)
            self.records = BranchWriter(
                config.repo, config.records_branch, auth, cache_dir=cache, author=AUTHOR
            )
        except SourceError as error:
            raise ConfigError(f"promotion.repo: {error}") from None

    def snapshot(self) -> Snapshot:
        """Fetch the source branch and every wave ref; read and validate fleet.yaml."""
        try:
            refs = self.mirror.fetch([self.source_ref], [WAVE_REF_PREFIX])
        except SourceError as error:
            return Snapshot(error=f"cannot fetch the fleet repository: {error}")
        now = time.time()
        head = refs.get(self.source_ref)
        if head is None:
            return Snapshot(None, refs, None, f"{self.source_ref} not found", now)
        try:
            text = self.mirror.read_file(head, FLEET_FILE)
        except SourceError as error:
            return Snapshot(head, refs, None, str(error), now)
        if text is None:
            return Snapshot(head, refs, None, f"{FLEET_FILE} not found at {head[:7]}", now)
        try:
            config = load_fleet_config(text)
        except ManifestError as error:
            return Snapshot(head, refs, None, f"{error} (at {head[:7]})", now)
        extra = [
            name
            for wave in config.waves
            for name in wave_refs(config, wave)
            if not name.startswith(WAVE_REF_PREFIX) and name != self.source_ref
        ]
        if extra:
            try:
                refs |= self.mirror.fetch(extra)
            except SourceError as error:
                return Snapshot(head, refs, None, f"cannot fetch wave refs: {error}", now)
        return Snapshot(head, refs, config, None, now)

    def move(self, ref: str, commit: str, expected: str | None) -> None:
        """Point ``ref`` at ``commit``, from ``expected`` (forward or back)."""
        self.mirror.move(ref, commit, expected=expected, force=True)

    def resolve(self, text: str) -> str | None:
        return self.mirror.resolve(text.strip())

    def write(self, entry: Entry) -> str:
        """Commit the record to the records branch; returns the branch's commit holding it."""
        path = records.path_of(entry)
        content = records.render(entry)
        result = self.records.update(lambda _read: {path: content}, records.message(entry))
        assert result.commit is not None
        return result.commit
