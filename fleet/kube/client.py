"""A small async client for the Kubernetes API, shaped for what the agent does.

It speaks to the API with raw JSON (no generated models: they cost time and memory at
thousands of objects), keeps its own discovery cache per group-version (the official
dynamic client re-runs full discovery on every miss), and maps every failure to
``fleet.kube.errors``. Transport and authentication come from the official client's
asyncio ``ApiClient``, so every kubeconfig form (certs, tokens, exec plugins, in-cluster)
works.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from kubernetes.aio import client as aio_client
from kubernetes.aio import config as aio_config
from multidict import CIMultiDict

from fleet.kube import errors

Object = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ResourceInfo:
    """Where a kind lives in the API: its plural resource name and whether it is namespaced."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base


class RequestKind(NamedTuple):
    verb: str
    """GET, LIST, WATCH, PATCH, POST, PUT or DELETE."""
    resource: str
    """The resource (``deployments``, ``units/status``) or ``discovery``."""
    dry_run: bool

    @property
    def is_write(self) -> bool:
        return self.verb in ("PATCH", "POST", "PUT", "DELETE") and not self.dry_run


def _resource_of(path: str) -> str:
    """``/apis/apps/v1/namespaces/x/deployments/web`` -> ``deployments``; a trailing ``/``
    marks a collection (a list), so the caller can tell LIST from GET."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return "other"
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    if not rest:
        return "discovery"
    if len(rest) == 1:
        return rest[0] + "/"
    return rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One event of a watch: ADDED, MODIFIED, DELETED or BOOKMARK, with the object."""

    type: str
    object: Object


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


class _Discovery:
    """Kind -> resource lookups, fetched per group-version and refreshed on a miss."""

    def __init__(self) -> None:
        self._by_group_version: dict[tuple[str, str], dict[str, ResourceInfo]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def forget(self, group: str, version: str) -> None:
        self._by_group_version.pop((group, version), None)

    async def lookup(self, client: KubeClient, api_version: str, kind: str) -> ResourceInfo:
        group, version = split_api_version(api_version)
        key = (group, version)
        found = self._by_group_version.get(key, {}).get(kind)
        if found:
            return found
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = self._by_group_version.get(key, {}).get(kind)
            if found:
                return found
            # A miss may mean a CRD was installed since we last looked: refresh this
            # group-version only, never the whole discovery document.
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                listing = await client.request("GET", path, what=f"discovery of {api_version}")
            except errors.NotFound as error:
                raise errors.NotFound(
                    f'no matches for kind "{kind}" in version "{api_version}": '
                    "is its CustomResourceDefinition installed?",
                    status=404,
                ) from error
            resources = {
                r["kind"]: ResourceInfo(group, version, r["kind"], r["name"], bool(r["namespaced"]))
                for r in listing.get("resources", [])
                if "/" not in r["name"]
            }
            self._by_group_version[key] = resources
        if kind not in resources:
            raise errors.NotFound(
                f'no matches for kind "{kind}" in version "{api_version}": '
                "is its CustomResourceDefinition installed?",
                status=404,
            )
        return resources[kind]


class KubeClient:
    """Async access to one cluster's API as one identity (optionally impersonating another)."""

    def __init__(
        self,
        api: aio_client.ApiClient,
        *,
        impersonate_user: str | None = None,
        impersonate_groups: tuple[str, ...] = (),
        max_concurrency: int = 32,
        discovery: _Discovery | None = None,
        parent_requests: collections.Counter[RequestKind] | None = None,
    ) -> None:
        self._api = api
        self._discovery = discovery or _Discovery()
        self._headers: dict[str, str] = {}
        if impersonate_user:
            self._headers["Impersonate-User"] = impersonate_user
        self._impersonate_groups = impersonate_groups
        self.impersonating = impersonate_user
        self._limit = asyncio.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self.requests: collections.Counter[RequestKind] = (
            parent_requests if parent_requests is not None else collections.Counter()
        )
        """Requests sent, by verb, resource and dry-run: the agent exports these as metrics,
        and benchmarks read them to prove a no-op resync writes nothing."""

    @classmethod
    async def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, *, max_concurrency: int = 32
    ) -> KubeClient:
        """A client from a kubeconfig file, or from the pod's service account in a cluster."""
        configuration = aio_client.Configuration()
        if path is None and _in_cluster():
            aio_config.load_incluster_config(client_configuration=configuration)
        else:
            await aio_config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration
            )
        configuration.connection_pool_maxsize = max_concurrency
        # aiohttp's trust_env reads the proxy variables and ~/.netrc again for every
        # request (the netrc in a thread): a quarter of the agent's CPU in a burst of
        # applies. Read the proxy once, as client-go does, and leave netrc alone.
        configuration.client_session_kwargs = {"trust_env": False}
        if not configuration.proxy:
            configuration.proxy = proxy_from_environment(configuration.host)
        return cls(aio_client.ApiClient(configuration), max_concurrency=max_concurrency)

    def as_service_account(self, namespace: str, name: str) -> KubeClient:
        """The same connection, impersonating a service account (Flux's serviceAccountName)."""
        return KubeClient(
            self._api,
            impersonate_user=f"system:serviceaccount:{namespace}:{name}",
            impersonate_groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
            max_concurrency=self._max_concurrency,
            discovery=self._discovery,
            parent_requests=self.requests,
        )

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | float | None = None,
    ) -> Any:
        url_path = path + (f"?{urlencode(query)}" if query else "")
        headers = {"Content-Type": content_type, "Accept": "application/json", **self._headers}
        serialized = await self._api.param_serialize(
            method, url_path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        method_, url, header_params, body_, post_params = serialized
        if self._impersonate_groups:
            # Several Impersonate-Group headers are needed; aiohttp takes a multidict.
            multi: CIMultiDict[str] = CIMultiDict(header_params)
            for group in self._impersonate_groups:
                multi.add("Impersonate-Group", group)
            return await self._api.call_api(
                method_, url, multi, body_, post_params, _request_timeout=timeout
            )
        return await self._api.call_api(
            method_, url, header_params, body_, post_params, _request_timeout=timeout
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        what: str = "",
    ) -> Any:
        """One API request; returns the decoded JSON body or raises a ``KubeError``."""
        what = what or f"{method} {path}"
        self._count(method, path, query)
        async with self._limit:
            try:
                response = await self._send(
                    method, path, body=body, query=query, content_type=content_type
                )
                data = await response.read()
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                raise errors.ApiUnavailable(f"{what}: {error or type(error).__name__}") from error
        if not 200 <= response.status < 300:
            raise errors.from_response(response.status, data, what)
        return json.loads(data) if data else None

    def _count(self, method: str, path: str, query: Mapping[str, Any] | None) -> None:
        resource = _resource_of(path)
        verb = "LIST" if method == "GET" and resource.endswith("/") else method
        dry_run = bool(query and query.get("dryRun"))
        self.requests[RequestKind(verb, resource.rstrip("/"), dry_run)] += 1

    async def resource(self, api_version: str, kind: str) -> ResourceInfo:
        return await self._discovery.lookup(self, api_version, kind)

    def forget_discovery(self, api_version: str) -> None:
        """Drop the cached resources of a group-version (after a CRD change)."""
        self._discovery.forget(*split_api_version(api_version))

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Object | None:
        info = await self.resource(api_version, kind)
        try:
            found: Object = await self.request(
                "GET", info.path(namespace, name), what=_describe(kind, namespace, name, "get")
            )
        except errors.NotFound:
            return None
        return found

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> tuple[list[Object], str]:
        """All objects of a kind (following pagination) and the list's resourceVersion."""
        info = await self.resource(api_version, kind)
        items: list[Object] = []
        query: dict[str, Any] = {"limit": 500}
        if label_selector:
            query["labelSelector"] = label_selector
        while True:
            page = await self.request("GET", info.path(namespace), query=query, what=f"list {kind}")
            for item in page.get("items", []):
                item.setdefault("apiVersion", info.api_version)
                item.setdefault("kind", kind)
                items.append(item)
            token = page.get("metadata", {}).get("continue")
            if not token:
                return items, str(page.get("metadata", {}).get("resourceVersion", ""))
            query["continue"] = token

    async def apply(
        self,
        obj: Mapping[str, Any],
        *,
        field_manager: str,
        force: bool = False,
        dry_run: bool = False,
    ) -> Object:
        """Server-side apply of one object; returns the object the server stored."""
        metadata = obj.get("metadata", {})
        name, namespace = metadata.get("name"), metadata.get("namespace")
        info = await self.resource(obj["apiVersion"], obj["kind"])
        query: dict[str, Any] = {"fieldManager": field_manager}
        if force:
            query["force"] = "true"
        if dry_run:
            query["dryRun"] = "All"
        applied: Object = await self.request(
            "PATCH",
            info.path(namespace if info.namespaced else None, name),
            body=obj,
            query=query,
            content_type="application/apply-patch+yaml",
            what=_describe(obj["kind"], namespace, name, "apply"),
        )
        return applied

    async def create(self, obj: Mapping[str, Any]) -> Object:
        metadata = obj.get("metadata", {})
        namespace = metadata.get("namespace")
        info = await self.resource(obj["apiVersion"], obj["kind"])
        created: Object = await self.request(
            "POST",
            info.path(namespace if info.namespaced else None),
            body=obj,
            what=_describe(obj["kind"], namespace, metadata.get("name"), "create"),
        )
        return created

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str = "Background",
    ) -> bool:
        """Delete one object; False when it was already gone."""
        info = await self.resource(api_version, kind)
        try:
            await self.request(
                "DELETE",
                info.path(namespace if info.namespaced else None, name),
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": propagation,
                },
                what=_describe(kind, namespace, name, "delete"),
            )
        except errors.NotFound:
            return False
        return True

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """Stream events from ``resource_version`` until the server ends the watch.

        Raises ``Gone`` when that version has expired: the caller lists again. BOOKMARK
        events are passed on so that the caller can advance its resourceVersion.
        """
        info = await self.resource(api_version, kind)
        query: dict[str, Any] = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if resource_version:
            query["resourceVersion"] = resource_version
        if label_selector:
            query["labelSelector"] = label_selector
        what = f"watch {kind}"
        self._count("WATCH", info.path(namespace), None)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        try:
            response = await self._send("GET", info.path(namespace), query=query, timeout=timeout)
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise errors.ApiUnavailable(f"{what}: {error or type(error).__name__}") from error
        try:
            if response.status != 200:
                raise errors.from_response(response.status, await response.read(), what)
            stream = response.response.content
            while True:
                try:
                    line = await stream.readline()
                except (TimeoutError, aiohttp.ClientError, OSError) as error:
                    raise errors.ApiUnavailable(
                        f"{what}: {error or type(error).__name__}"
                    ) from error
                if not line:
                    return
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object", {})
                    raise errors.from_response(
                        int(status.get("code", 500)), json.dumps(status), what
                    )
                obj = event.get("object", {})
                obj.setdefault("apiVersion", info.api_version)
                obj.setdefault("kind", kind)
                yield WatchEvent(event["type"], obj)
        finally:
            with contextlib.suppress(Exception):
                response.response.release()


def _describe(kind: str, namespace: str | None, name: str | None, verb: str) -> str:
    target = f"{namespace}/{name}" if namespace else str(name)
    return f"{verb} {kind} {target}"


def proxy_from_environment(url: str) -> str | None:
    """The proxy HTTPS_PROXY/HTTP_PROXY name for ``url``, unless NO_PROXY exempts it."""
    proxies = urllib.request.getproxies_environment()
    host = urlsplit(url).hostname or ""
    if urllib.request.proxy_bypass(host):  # NO_PROXY, on Linux
        return None
    return proxies.get(urlsplit(url).scheme or "https")


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )
