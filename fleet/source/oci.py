"""OCI artifacts pulled from a registry as Flux's OCIRepository and Helm OCI charts do.

This module owns the HTTP of the OCI distribution API (httpx): tag listing, manifests,
blobs, and the registry's auth challenges (Basic, and the Bearer token flow of
``WWW-Authenticate: Bearer realm=...,service=...,scope=...``). Every blob and manifest is
verified against its sha256 digest; a tar+gzip layer is extracted only after each entry is
checked (no absolute paths, no ``..``, no links leaving the target, size limits).
Foreign exceptions (httpx, ssl, tarfile) become ``fleet.source.errors`` here and nowhere
else, and each names the spec field to blame where there is one.

The revision is Flux's: ``<tag>@sha256:<manifest digest>`` for a tag or semver reference,
``sha256:<manifest digest>`` for a digest reference (source-controller's ``getRevision``).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gzip
import hashlib
import ipaddress
import json
import re
import shutil
import socket
import ssl
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlencode, urlparse

import httpx

from fleet.source import errors, semver

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST))

FLUX_CONFIG_MEDIA_TYPE = "application/vnd.cncf.flux.config.v1+json"
"""The config media type ``flux push artifact`` writes (fluxcd/pkg/oci)."""
FLUX_CONTENT_MEDIA_TYPE = "application/vnd.cncf.flux.content.v1.tar+gzip"
"""The layer media type of ``flux push artifact``: a tar+gzip of the pushed folder."""
HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
"""The layer of a chart that ``helm push`` uploads: the packaged chart (.tgz)."""

DEFAULT_MAX_SIZE = 100 << 20
"""Largest blob fetched and largest total extracted, in bytes (Flux's default is 100 MiB)."""
MAX_ENTRIES = 100_000
"""Most entries one layer may hold: a tar of millions of empty files is a denial of service."""
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:[._-]+[a-z0-9]+|__)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


@dataclasses.dataclass(frozen=True)
class Reference:
    """``spec.ref``: which manifest of the repository. Precedence digest > semver > tag."""

    tag: str = ""
    semver: str = ""
    semver_filter: str = ""
    digest: str = ""


@dataclasses.dataclass(frozen=True)
class LayerSelector:
    """``spec.layerSelector``: the layer to take (default: the first) and what to do with it."""

    media_type: str = ""
    operation: Literal["extract", "copy"] = "extract"


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A registry user and password (or identity token as password)."""

    username: str
    password: str = dataclasses.field(repr=False)

    @classmethod
    def from_docker_config(cls, config_json: bytes | str, registry_host: str) -> Credentials | None:
        """The entry for ``registry_host`` of a ``.dockerconfigjson`` (a Secret's data).

        Keys may be written as ``host``, ``https://host`` or ``https://host/v1/``; an entry
        has ``auth`` (base64 ``user:password``) or ``username``/``password``.
        """
        try:
            document = json.loads(config_json)
        except ValueError as error:
            raise errors.SourceConfigError(
                f"is not JSON ({error})", field="spec.secretRef .dockerconfigjson"
            ) from None
        auths = document.get("auths") if isinstance(document, dict) else None
        if not isinstance(auths, dict):
            raise errors.SourceConfigError(
                "has no `auths` object", field="spec.secretRef .dockerconfigjson"
            )
        for key, entry in auths.items():
            host = urlparse(key if "://" in key else f"//{key}").netloc
            if host != registry_host or not isinstance(entry, dict):
                continue
            if auth := entry.get("auth"):
                try:
                    user, _, password = base64.b64decode(auth).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    raise errors.SourceConfigError(
                        f"the `auth` of {key!r} is not base64 user:password",
                        field="spec.secretRef .dockerconfigjson",
                    ) from None
                return cls(user, password)
            if "username" in entry:
                return cls(str(entry["username"]), str(entry.get("password", "")))
        return None


@dataclasses.dataclass(frozen=True)
class Registry:
    """How to reach a registry: the transport settings shared by artifacts and charts."""

    credentials: Credentials | None = None
    ca_pem: bytes | None = dataclasses.field(default=None, repr=False)
    """``certSecretRef``'s ``ca.crt``: trusted in addition to nothing else (not the system's)."""
    insecure: bool = False
    """``spec.insecure``: plain HTTP."""
    timeout: float = 60.0
    max_size: int = DEFAULT_MAX_SIZE
    private_realms: bool = False
    """Follow a token realm on a loopback, private or link-local address. Off by default,
    as in Flux's client: the registry picks the realm, and could aim the agent (with the
    credentials) at a service inside the cluster's network."""


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A reference resolved to one manifest."""

    tag: str
    """The tag followed (empty for a digest reference)."""
    digest: str
    """``sha256:<hex>`` of the manifest."""

    @property
    def revision(self) -> str:
        return f"{self.tag}@{self.digest}" if self.tag else self.digest


@dataclasses.dataclass(frozen=True)
class Artifact:
    """An artifact pulled into ``path``: a folder (extract) or the layer file (copy)."""

    url: str
    resolved: Resolved
    path: Path
    layer_digest: str
    layer_media_type: str
    annotations: Mapping[str, str]

    @property
    def revision(self) -> str:
        return self.resolved.revision


@dataclasses.dataclass(frozen=True)
class Chart:
    """A Helm chart pulled from an OCI registry: its version and the packaged ``.tgz``."""

    name: str
    version: str
    digest: str
    path: Path


def parse_url(url: str) -> tuple[str, str]:
    """``oci://host[:port]/repo`` as ``(host[:port], repo)``; a tag or digest in it is refused."""
    parsed = urlparse(url)
    repository = parsed.path.strip("/")
    if parsed.scheme != "oci" or not parsed.netloc or not repository:
        raise errors.SourceConfigError(
            "must look like oci://host[:port]/repository", url=url, field="spec.url"
        )
    if "@" in repository or ":" in repository:
        raise errors.SourceConfigError(
            "must not carry a tag or digest (use spec.ref)", url=url, field="spec.url"
        )
    if not _REPOSITORY.match(repository):
        raise errors.SourceConfigError(
            f"{repository!r} is not a valid repository name", url=url, field="spec.url"
        )
    return parsed.netloc, repository


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryClient:
    """The distribution API of one repository, with its auth handshake and digest checks."""

    def __init__(self, url: str, registry: Registry, *, ref: str = "") -> None:
        self.url = url
        self.ref = ref
        self.host, self.repository = parse_url(url)
        self.registry = registry
        self.base = f"{'http' if registry.insecure else 'https'}://{self.host}"
        verify: ssl.SSLContext | bool = True
        if not registry.insecure and registry.ca_pem is not None:
            try:
                verify = ssl.create_default_context(cadata=registry.ca_pem.decode())
            except (ssl.SSLError, ValueError, UnicodeDecodeError):
                raise self._error(
                    errors.SourceConfigError, "is not a PEM CA bundle", "spec.certSecretRef ca.crt"
                ) from None
        self._http = httpx.Client(
            verify=verify, timeout=registry.timeout, follow_redirects=True, trust_env=False
        )
        self._authorization: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(
        self, kind: type[errors.SourceError], detail: str, field: str = ""
    ) -> errors.SourceError:
        return kind(detail, url=self.url, ref=self.ref, field=field)

    @contextlib.contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError as error:
            if isinstance(error.__context__, ssl.SSLError) or "CERTIFICATE" in str(error):
                raise self._error(
                    errors.ServerNotTrusted,
                    f"TLS verification of {self.host} failed ({error}); "
                    "check spec.certSecretRef or spec.insecure",
                    "spec.certSecretRef",
                ) from None
            raise self._error(
                errors.SourceUnavailable, f"cannot connect to {self.host}: {error}"
            ) from None
        except httpx.TimeoutException:
            raise self._error(
                errors.SourceUnavailable, f"{self.host} did not answer in time"
            ) from None
        except httpx.RemoteProtocolError as error:
            hint = " (is it plain HTTP? see spec.insecure)" if not self.registry.insecure else ""
            raise self._error(
                errors.SourceUnavailable, f"{self.host} broke the protocol: {error}{hint}"
            ) from None
        except httpx.HTTPError as error:
            raise self._error(errors.SourceUnavailable, f"{self.host}: {error}") from None

    def _send(self, method: str, path: str, headers: Mapping[str, str]) -> httpx.Response:
        """One request, answering the registry's auth challenge once."""
        with self._transport_errors():
            request_headers = dict(headers)
            if self._authorization:
                request_headers["Authorization"] = self._authorization
            response = self._http.request(method, self.base + path, headers=request_headers)
            if response.status_code == 401:
                self._authorization = self._answer(response.headers.get("WWW-Authenticate", ""))
                request_headers["Authorization"] = self._authorization
                response = self._http.request(method, self.base + path, headers=request_headers)
            if response.status_code in (401, 403):
                raise self._error(
                    errors.SourceAuthError,
                    f"the registry refused access to {self.repository} "
                    f"(HTTP {response.status_code}); check the credentials",
                    "spec.secretRef",
                )
            return response

    @contextlib.contextmanager
    def _stream(self, path: str) -> Iterator[httpx.Response]:
        """A streamed GET, answering the auth challenge once like ``_send``."""
        with self._transport_errors():
            for attempt in (1, 2):
                headers = {"Authorization": self._authorization} if self._authorization else {}
                with self._http.stream("GET", self.base + path, headers=headers) as response:
                    if response.status_code == 401 and attempt == 1:
                        challenge = response.headers.get("WWW-Authenticate", "")
                        self._authorization = self._answer(challenge)
                        continue
                    if response.status_code in (401, 403):
                        raise self._error(
                            errors.SourceAuthError,
                            f"the registry refused access to {self.repository} "
                            f"(HTTP {response.status_code}); check the credentials",
                            "spec.secretRef",
                        )
                    yield response
                    return

    def _answer(self, challenge: str) -> str:
        """The Authorization header answering a ``WWW-Authenticate`` challenge."""
        scheme, _, rest = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(rest))
        credentials = self.registry.credentials
        basic = None
        if credentials is not None:
            pair = f"{credentials.username}:{credentials.password}".encode()
            basic = "Basic " + base64.b64encode(pair).decode()
        if scheme.lower() == "basic":
            if basic is None:
                raise self._error(
                    errors.SourceAuthError,
                    "the registry asks for credentials and none are configured",
                    "spec.secretRef",
                )
            return basic
        if scheme.lower() != "bearer" or "realm" not in params:
            raise self._error(errors.SourceAuthError, f"unsupported auth challenge {challenge!r}")
        realm = params["realm"]
        if urlparse(realm).scheme != "https" and not self.registry.insecure:
            raise self._error(
                errors.SourceAuthError, f"refusing to send credentials to non-HTTPS realm {realm}"
            )
        realm_host = urlparse(realm).hostname or ""
        if not self.registry.private_realms and _private_address(realm_host):
            raise self._error(
                errors.SourceAuthError,
                f"the registry's token realm {realm} is on a private address; refused",
            )
        query = {k: params[k] for k in ("service", "scope") if k in params}
        if "scope" not in query:
            query["scope"] = f"repository:{self.repository}:pull"
        token_url = f"{realm}?{urlencode(query)}"
        answer = self._http.get(token_url, headers={"Authorization": basic} if basic else {})
        if answer.status_code in (401, 403):
            raise self._error(
                errors.SourceAuthError,
                f"the token service refused the credentials (HTTP {answer.status_code})",
                "spec.secretRef",
            )
        if answer.status_code != 200:
            raise self._error(
                errors.SourceUnavailable, f"the token service answered HTTP {answer.status_code}"
            )
        try:
            body = answer.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise self._error(errors.SourceUnavailable, "the token service sent no token")
        return f"Bearer {token}"

    def tags(self) -> list[str]:
        """Every tag of the repository (following ``Link`` pagination)."""
        found: list[str] = []
        path = f"/v2/{self.repository}/tags/list?n=1000"
        while path:
            response = self._send("GET", path, {"Accept": "application/json"})
            if response.status_code == 404:
                raise self._error(
                    errors.RefNotFound, f"repository {self.repository} does not exist", "spec.url"
                )
            self._expect_ok(response, "listing tags")
            try:
                found.extend(response.json().get("tags") or [])
            except (ValueError, AttributeError):
                raise self._error(errors.SourceUnavailable, "tag list is not JSON") from None
            link = response.headers.get("Link", "")
            match = re.match(r"<([^>]+)>", link)
            path = match.group(1) if match else ""
        return found

    def manifest(self, reference: str, *, field: str) -> tuple[str, dict[str, Any]]:
        """``(digest, manifest)`` of a tag or digest; the bytes are checked against the digest."""
        response = self._send(
            "GET", f"/v2/{self.repository}/manifests/{reference}", {"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code == 404:
            what = "digest" if reference.startswith("sha256:") else "tag"
            raise self._error(
                errors.RefNotFound,
                f"{what} {reference!r} does not exist in {self.repository}",
                field,
            )
        self._expect_ok(response, f"fetching manifest {reference}")
        body = response.content
        if len(body) > 4 << 20:
            raise self._error(errors.UnsafeArchive, f"manifest {reference} is larger than 4 MiB")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        expected = reference if reference.startswith("sha256:") else ""
        expected = expected or response.headers.get("Docker-Content-Digest", "")
        if expected and expected.startswith("sha256:") and expected != digest:
            raise self._error(
                errors.DigestMismatch,
                f"manifest {reference} hashes to {digest}, not {expected}",
            )
        try:
            document = json.loads(body)
        except ValueError:
            raise self._error(
                errors.SourceUnavailable, f"manifest {reference} is not JSON"
            ) from None
        if not isinstance(document, dict):
            raise self._error(errors.SourceUnavailable, f"manifest {reference} is not an object")
        media_type = document.get("mediaType") or response.headers.get("Content-Type", "")
        if media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST) or "manifests" in document:
            raise self._error(
                errors.SourceConfigError,
                f"{reference} is an image index (several platforms), not an artifact",
                field,
            )
        return digest, document

    def blob(self, descriptor: Mapping[str, Any], destination: Path) -> None:
        """Download a blob into ``destination``, refusing it unless size and sha256 match."""
        digest = str(descriptor.get("digest", ""))
        size = descriptor.get("size")
        if not _DIGEST.match(digest):
            raise self._error(errors.SourceConfigError, f"layer digest {digest!r} is not sha256")
        limit = self.registry.max_size
        if isinstance(size, int) and size > limit:
            raise self._error(
                errors.UnsafeArchive, f"blob {digest} is {size} bytes, over the {limit}-byte limit"
            )
        hasher = hashlib.sha256()
        written = 0
        with self._stream(f"/v2/{self.repository}/blobs/{digest}") as response:
            if response.status_code == 404:
                raise self._error(errors.RefNotFound, f"blob {digest} is missing in the registry")
            self._expect_ok(response, f"fetching blob {digest}")
            with destination.open("wb") as out, self._transport_errors():
                for chunk in response.iter_bytes(1 << 16):
                    written += len(chunk)
                    if written > limit:
                        raise self._error(
                            errors.UnsafeArchive, f"blob {digest} exceeds the {limit}-byte limit"
                        )
                    hasher.update(chunk)
                    out.write(chunk)
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest or (isinstance(size, int) and written != size):
            destination.unlink(missing_ok=True)
            raise self._error(
                errors.DigestMismatch,
                f"blob {digest} ({size} bytes) arrived as {actual} ({written} bytes)",
            )

    def _expect_ok(self, response: httpx.Response, what: str) -> None:
        if response.status_code != 200:
            raise self._error(errors.SourceUnavailable, f"{what}: HTTP {response.status_code}")


def resolve(client: RegistryClient, reference: Reference) -> Resolved:
    """The manifest a ``spec.ref`` names, as Flux picks it: digest, else semver, else tag."""
    if reference.digest:
        if not _DIGEST.match(reference.digest):
            raise client._error(
                errors.SourceConfigError,
                f"{reference.digest!r} is not sha256:<64 hex digits>",
                "spec.ref.digest",
            )
        return Resolved("", reference.digest)
    if reference.semver:
        tag = newest_tag(client, reference.semver, reference.semver_filter)
        digest, _ = client.manifest(tag, field="spec.ref.semver")
        return Resolved(tag, digest)
    tag = reference.tag or "latest"
    if not _TAG.match(tag):
        raise client._error(errors.SourceConfigError, f"{tag!r} is not a valid tag", "spec.ref.tag")
    digest, _ = client.manifest(tag, field="spec.ref.tag")
    return Resolved(tag, digest)


def newest_tag(client: RegistryClient, semver_range: str, semver_filter: str = "") -> str:
    """The tag of the highest version in ``semver_range`` (tags matching the filter only)."""
    try:
        wanted = semver.parse_range(semver_range)
    except semver.InvalidRange as error:
        raise client._error(errors.SourceConfigError, str(error), "spec.ref.semver") from None
    tags = client.tags()
    if semver_filter:
        try:
            pattern = re.compile(semver_filter)
        except re.error as error:
            raise client._error(
                errors.SourceConfigError,
                f"is not a regular expression ({error})",
                "spec.ref.semverFilter",
            ) from None
        tags = [t for t in tags if pattern.search(t)]
    best = semver.newest_matching(wanted, tags)
    if best is None:
        shown = ", ".join(tags[:10]) + (" ..." if len(tags) > 10 else "") if tags else "none"
        raise client._error(
            errors.RefNotFound,
            f"no tag matches {semver_range!r}"
            + (f" with filter {semver_filter!r}" if semver_filter else "")
            + f" (tags: {shown})",
            "spec.ref.semver",
        )
    return best[0]


def _select_layer(
    client: RegistryClient, manifest: Mapping[str, Any], selector: LayerSelector
) -> Mapping[str, Any]:
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        raise client._error(errors.LayerNotFound, "the artifact has no layers")
    if not selector.media_type:
        first = layers[0]
        return first if isinstance(first, dict) else {}
    for layer in layers:
        if isinstance(layer, dict) and layer.get("mediaType") == selector.media_type:
            return layer
    present = sorted({str(layer.get("mediaType")) for layer in layers if isinstance(layer, dict)})
    raise client._error(
        errors.LayerNotFound,
        f"no layer has media type {selector.media_type!r} (the artifact has {', '.join(present)})",
        "spec.layerSelector.mediaType",
    )


def pull(
    url: str,
    reference: Reference,
    destination: Path,
    *,
    registry: Registry | None = None,
    layer_selector: LayerSelector | None = None,
) -> Artifact:
    """Resolve ``reference``, fetch and verify the manifest and the chosen layer, unpack it.

    ``destination`` must not exist or be an empty folder. With ``operation: extract`` it
    receives the layer's files; with ``copy`` it receives the layer blob as ``layer.tar.gz``
    (as Flux stores it, unextracted).
    """
    registry = registry or Registry()
    selector = layer_selector or LayerSelector()
    shown_ref = reference.digest or reference.semver or reference.tag or "latest"
    with RegistryClient(url, registry, ref=shown_ref) as client:
        resolved = resolve(client, reference)
        field = "spec.ref.digest" if reference.digest else "spec.ref"
        _, manifest = client.manifest(resolved.digest, field=field)
        layer = _select_layer(client, manifest, selector)
        destination.mkdir(parents=True, exist_ok=True)
        if any(destination.iterdir()):
            raise client._error(errors.SourceConfigError, f"{destination} is not empty")
        with tempfile.TemporaryDirectory(prefix="fleet-oci-") as scratch:
            blob_path = Path(scratch) / "layer"
            client.blob(layer, blob_path)
            if selector.operation == "copy":
                shutil.move(blob_path, destination / "layer.tar.gz")
                path = destination / "layer.tar.gz"
            else:
                extract_tar_gz(blob_path, destination, max_size=registry.max_size, url=url)
                path = destination
        annotations = manifest.get("annotations")
        return Artifact(
            url=url,
            resolved=resolved,
            path=path,
            layer_digest=str(layer.get("digest")),
            layer_media_type=str(layer.get("mediaType")),
            annotations=dict(annotations) if isinstance(annotations, dict) else {},
        )


def pull_chart(
    repository_url: str,
    chart: str,
    version: str,
    destination: Path,
    *,
    registry: Registry | None = None,
) -> Chart:
    """A chart of an OCI HelmRepository (``oci://host/path`` + chart name) at ``version``.

    ``version`` is a semver range (``*``, ``1.x``, ``>=1.2 <2``) or an exact version; tags
    are chart versions with ``+`` written as ``_`` (helm's rule). The chart layer is saved
    as ``<chart>-<version>.tgz`` in ``destination``, ready for ``helm install``.
    """
    registry = registry or Registry()
    url = repository_url.rstrip("/") + "/" + chart
    with RegistryClient(url, registry, ref=version or "*") as client:
        tags = {t.replace("_", "+"): t for t in client.tags()}
        try:
            wanted = semver.parse_range(version or "*")
        except semver.InvalidRange as error:
            raise client._error(
                errors.SourceConfigError, str(error), "spec.chart.spec.version"
            ) from None
        best = semver.newest_matching(wanted, tags)
        if best is None:
            raise client._error(
                errors.RefNotFound,
                f"no version of chart {chart} matches {version!r} "
                f"(versions: {', '.join(sorted(tags)) or 'none'})",
                "spec.chart.spec.version",
            )
        chart_version = best[0]
        digest, manifest = client.manifest(tags[chart_version], field="spec.chart.spec.version")
        layer = _select_layer(client, manifest, LayerSelector(media_type=HELM_CHART_MEDIA_TYPE))
        destination.mkdir(parents=True, exist_ok=True)
        path = destination / f"{chart}-{chart_version}.tgz"
        client.blob(layer, path)
        return Chart(name=chart, version=chart_version, digest=digest, path=path)


def extract_tar_gz(archive: Path, destination: Path, *, max_size: int, url: str = "") -> None:
    """Unpack a tar+gzip into ``destination`` after checking every entry.

    Refused: absolute names, ``..`` components, hard or symbolic links that point outside
    ``destination``, devices and FIFOs, more than ``MAX_ENTRIES`` entries, and more than
    ``max_size`` bytes in total (declared sizes, so a gzip bomb is caught before writing).
    """

    def unsafe(detail: str) -> errors.SourceError:
        return errors.UnsafeArchive(detail, url=url)

    root = destination.resolve()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = []
            total = 0
            for count, member in enumerate(tar, start=1):
                if count > MAX_ENTRIES:
                    raise unsafe(f"the layer has more than {MAX_ENTRIES} entries")
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise unsafe(f"entry {member.name!r} would land outside the artifact")
                if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                    raise unsafe(f"entry {member.name!r} is a device or FIFO")
                if member.issym() or member.islnk():
                    base = root if member.islnk() else (root / name).parent
                    target = PurePosixPath(member.linkname)
                    landing = Path(base, target) if not target.is_absolute() else Path(target)
                    if target.is_absolute() or not _inside(root, landing):
                        raise unsafe(
                            f"link {member.name!r} -> {member.linkname!r} leaves the artifact"
                        )
                total += max(member.size, 0)
                if total > max_size:
                    raise unsafe(f"the layer unpacks to more than {max_size} bytes")
                members.append(member)
            tar.extractall(destination, members=members, filter="data")
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, OSError) as error:
        if isinstance(error, tarfile.FilterError):
            raise unsafe(f"refused by the tar filter: {error}") from None
        raise errors.SourceConfigError(
            f"the layer is not a readable tar+gzip ({error}); for other content use "
            "spec.layerSelector.operation: copy",
            url=url,
            field="spec.layerSelector",
        ) from None


def _private_address(host: str) -> bool:
    """Whether ``host`` is (or resolves to) a loopback, private or link-local address."""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return True  # unresolvable: nothing to send credentials to
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified:
            return True
    return False


def _inside(root: Path, path: Path) -> bool:
    """Whether ``path``, with ``..`` folded lexically, stays under ``root``."""
    parts: list[str] = []
    for part in path.relative_to(root).parts if path.is_relative_to(root) else ("..",):
        if part == "..":
            if not parts:
                return False
            parts.pop()
        elif part != ".":
            parts.append(part)
    return True
