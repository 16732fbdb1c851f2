"""Live copies of every object the agent manages, kept current by watches.

One watch per kind, cluster-wide, filtered to objects carrying the agent's unit label.
The cache serves two purposes: a periodic resync can tell without any request that an
object still matches what was applied, and a change made by anyone else reaches the
agent within milliseconds (drift healing). Watches resume from the last seen
resourceVersion (advanced by BOOKMARK events) and re-list after 410 Gone.

Each object is kept serialised (``marshal``) next to its resourceVersion: a decoded
Deployment is some forty small dicts, about eight times the bytes of its serialised form,
and the agent reads a cached object far less often than it keeps one. Every ``get``
returns a fresh copy, so no caller can change what the cache holds.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
from collections.abc import Awaitable, Callable, Collection, Iterator
from typing import Any

import anyio
import anyio.abc

from fleet.api import unit as unit_api
from fleet.core.manifests import ObjectKey, api_group
from fleet.kube import KubeClient, KubeError
from fleet.kube.errors import Gone, NotFound

log = logging.getLogger(__name__)

Object = dict[str, Any]
ChangeHandler = Callable[[str, ObjectKey, Object], Awaitable[None]]
"""Called with the event type (ADDED, MODIFIED, DELETED), the object's key and the object."""
Kept = tuple[str, bytes]
"""A cached object: its resourceVersion and its kept fields, serialised."""

_RETRY_SECONDS = 1.0


class LiveCache:
    """Watched objects by key; ``ensure_watch`` adds a kind, ``watching`` wakes waiters."""

    def __init__(
        self,
        client: KubeClient,
        on_change: ChangeHandler | None = None,
        *,
        label_selector: str = unit_api.UNIT_NAME_LABEL,
        namespace: str | None = None,
        keep: Callable[[Object], Object] | None = None,
    ) -> None:
        self._client = client
        self._keep = keep or kept_copy
        self._label_selector = label_selector
        self._namespace = namespace
        self._on_change = on_change
        self._objects: dict[ObjectKey, Kept] = {}
        self._watched: dict[tuple[str, str], anyio.Event] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._interests: dict[ObjectKey, set[Interest]] = {}
        self._relisted: set[Interest] = set()
        """Every interest, woken by a re-list (which may change any key at once)."""

    def get(self, key: ObjectKey) -> Object | None:
        kept = self._objects.get(key)
        return None if kept is None else marshal.loads(kept[1])

    def __len__(self) -> int:
        return len(self._objects)

    @contextlib.contextmanager
    def watching(self, keys: Collection[ObjectKey]) -> Iterator[Interest]:
        """An interest in some keys: its ``wait`` returns after any of them changed.

        Health checks wait on this instead of polling. Scoped to the keys, so a thousand
        units waiting at once are not all woken by every event (which was quadratic).
        """
        interest = Interest()
        for key in keys:
            self._interests.setdefault(key, set()).add(interest)
        self._relisted.add(interest)
        try:
            yield interest
        finally:
            self._relisted.discard(interest)
            for key in keys:
                waiting = self._interests.get(key)
                if waiting is not None:
                    waiting.discard(interest)
                    if not waiting:
                        del self._interests[key]

    def _wake(self, key: ObjectKey) -> None:
        for interest in self._interests.get(key, ()):
            interest.notify()

    def is_watched(self, api_version: str, kind: str) -> bool:
        return (api_group(api_version), kind) in self._watched

    async def run(
        self, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Host the watch tasks; returns only when cancelled."""
        async with anyio.create_task_group() as tasks:
            self._task_group = tasks
            task_status.started()
            await anyio.sleep_forever()

    async def ensure_watch(self, api_version: str, kind: str) -> None:
        """Start watching a kind (once) and wait until its initial list is in the cache."""
        key = (api_group(api_version), kind)
        synced = self._watched.get(key)
        if synced is None:
            assert self._task_group is not None, "LiveCache.run() must be started first"
            synced = self._watched[key] = anyio.Event()
            self._task_group.start_soon(self._watch_kind, api_version, kind, synced)
        await synced.wait()

    async def _watch_kind(self, api_version: str, kind: str, synced: anyio.Event) -> None:
        selector = self._label_selector
        group = api_group(api_version)
        version = ""
        while True:
            try:
                if not version:
                    version = await self._relist(api_version, kind, group, selector)
                    synced.set()
                async for event in self._client.watch(
                    api_version,
                    kind,
                    self._namespace,
                    resource_version=version,
                    label_selector=selector,
                ):
                    obj = event.object
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event.type == "BOOKMARK":
                        continue
                    await self._apply_event(event.type, obj)
            except Gone:
                log.info("watch of %s expired; listing again", kind)
                version = ""
            except NotFound:
                # No such kind (yet): its CRD may be applied in a moment; look again soon.
                synced.set()
                await anyio.sleep(_RETRY_SECONDS)
                version = ""
            except KubeError as error:
                log.warning("watch of %s failed: %s; retrying", kind, error)
                await anyio.sleep(_RETRY_SECONDS)

    async def _relist(self, api_version: str, kind: str, group: str, selector: str) -> str:
        items, version = await self._client.list(
            api_version, kind, self._namespace, label_selector=selector
        )
        fresh = {ObjectKey.from_manifest(item): item for item in items}
        stale = [k for k in self._objects if k.group == group and k.kind == kind and k not in fresh]
        for key in stale:
            gone = self._objects.pop(key)
            await self._notify("DELETED", key, marshal.loads(gone[1]))
        for key, item in fresh.items():
            previous = self._objects.get(key)
            self._objects[key] = self._kept(item)
            if previous is None or previous[0] != _version(item):
                await self._notify("ADDED" if previous is None else "MODIFIED", key, item)
        for interest in self._relisted:
            interest.notify()
        return version

    async def _apply_event(self, kind: str, obj: Object) -> None:
        key = ObjectKey.from_manifest(obj)
        if kind == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = self._kept(obj)
        self._wake(key)
        await self._notify(kind, key, obj)

    async def _notify(self, kind: str, key: ObjectKey, obj: Object) -> None:
        if self._on_change is None:
            return
        try:
            await self._on_change(kind, key, obj)
        except Exception:  # a handler bug must not kill the watch
            log.exception("handling %s of %s failed", kind, key)

    def remember(self, obj: Object) -> None:
        """Store an object the agent just wrote, unless the watch already has a newer one."""
        key = ObjectKey.from_manifest(obj)
        current = self._objects.get(key)
        if current is None or _newer(_version(obj), current[0]):
            self._objects[key] = self._kept(obj)

    def forget(self, key: ObjectKey) -> None:
        self._objects.pop(key, None)

    def _kept(self, obj: Object) -> Kept:
        return _version(obj), marshal.dumps(self._keep(obj))


def kept_copy(obj: Object) -> Object:
    """What the cache keeps of a watched object: all but the field sets."""
    return without_field_sets(obj)


def without_field_sets(obj: Object) -> Object:
    """The object without the field sets of its managedFields (most of an object's size,
    and read by no one here); who wrote it and when stays."""
    metadata = obj.get("metadata")
    managed = (metadata or {}).get("managedFields")
    if not managed:
        return obj
    slim = [{k: v for k, v in entry.items() if k != "fieldsV1"} for entry in managed]
    return {**obj, "metadata": {**metadata, "managedFields": slim}}  # type: ignore[dict-item]


def _version(obj: Object) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


def _newer(candidate: str, current: str) -> bool:
    try:
        return int(candidate) > int(current)
    except ValueError:
        return True


class Interest:
    """A waiter's flag: set by a change, cleared when the waiter wakes, so a change that
    happens while the waiter is busy is not lost."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = anyio.Event()
