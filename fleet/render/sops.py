"""SOPS decryption of a render's files, as Flux's kustomize-controller does it, by the real sops.

Flux decrypts when a Kustomization says ``spec.decryption.provider: sops``, with the keys
of the Secret in ``spec.decryption.secretRef``: each ``*.agekey`` value holds age
identities, each ``*.asc`` value an armored OpenPGP private key. Before kustomize runs,
the inputs of every ``secretGenerator`` (``files`` and ``envs``) reachable from the unit's
kustomization are decrypted in place, and so are resource files that are sops documents
(kustomize-controller decrypts those after the build; the result is the same object).

A file is taken as encrypted by the marker sops writes for its format (kustomize-controller's
``sopsFormatToMarkerBytes``): ``mac: ENC[`` for YAML, ``"mac": "ENC[`` for JSON and binary,
``sops_mac=ENC[`` for dotenv, ``[sops]`` for INI. A rendered object is encrypted when it has
a top-level ``sops`` stanza with ``mac`` (and ``lastmodified``); a unit without decryption
that holds one is refused, naming the file or object, never applied as ciphertext.

The keys live only in a private folder (0700, files 0600) for the life of a
``SopsDecryptor``; sops runs with a scrubbed environment and a timeout. No message of
this module carries decrypted content: sops' own error output is cut to its first line,
which for a decryption failure names keys and files, not values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

Format = Literal["yaml", "json", "dotenv", "ini", "binary"]

MARKERS: dict[Format, bytes] = {
    "yaml": b"mac: ENC[",
    "json": b'"mac": "ENC[',
    "binary": b'"mac": "ENC[',
    "dotenv": b"sops_mac=ENC[",
    "ini": b"[sops]",
}
"""What sops writes into a file of each format when it encrypts it."""

MAX_FILE_SIZE = 5 << 20
"""Largest file decrypted, in bytes (kustomize-controller's ``maxEncryptedFileSize``)."""
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
AGE_KEY_SUFFIX = ".agekey"
PGP_KEY_SUFFIX = ".asc"


class DecryptionError(Exception):
    """A file could not be decrypted; the message names the file, never its content."""

    def __init__(self, file: str, detail: str) -> None:
        self.file = file
        self.detail = detail
        super().__init__(f"{file}: {detail}")


class EncryptedWithoutDecryption(DecryptionError):
    """A file or object is sops-encrypted but the unit configures no decryption."""


class KeyImportError(DecryptionError):
    """A key of the decryption Secret cannot be used (the ``file`` is the Secret's key)."""


def format_for_path(path: str) -> Format:
    """sops' format for a file name (``formats.FormatForPath``, plus Flux's dockerconfigjson)."""
    name = PurePosixPath(path).name
    if name.endswith(".dockerconfigjson"):
        return "json"
    suffix = PurePosixPath(name).suffix
    return {
        ".yaml": "yaml",
        ".yml": "yaml",
        ".json": "json",
        ".env": "dotenv",
        ".ini": "ini",
    }.get(suffix, "binary")  # type: ignore[return-value]


def is_encrypted(data: bytes, fmt: Format) -> bool:
    return MARKERS[fmt] in data


def is_encrypted_document(document: Mapping[str, Any]) -> bool:
    """An object (parsed YAML or JSON) with sops' top-level stanza."""
    stanza = document.get("sops")
    return isinstance(stanza, Mapping) and bool(stanza.get("mac")) and "lastmodified" in stanza


def refuse_encrypted_objects(objects: Sequence[Mapping[str, Any]], unit: str) -> None:
    """Raise for the first rendered object that is still a sops document.

    For a unit without ``spec.decryption``: Flux refuses to apply such a Secret, and an
    encrypted object of any other kind is as wrong to apply.
    """
    for obj in objects:
        if is_encrypted_document(obj):
            meta = obj.get("metadata") or {}
            name = f"{obj.get('kind', '?')}/{meta.get('namespace', '')}/{meta.get('name', '?')}"
            raise EncryptedWithoutDecryption(
                unit,
                f"{name.replace('//', '/')} is SOPS-encrypted; set spec.decryption "
                "(provider: sops, secretRef with the keys) to reconcile it",
            )


@dataclasses.dataclass(frozen=True)
class SopsKeys:
    """Decryption keys taken from a Secret's data."""

    age_identities: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    pgp_keys: tuple[tuple[str, bytes], ...] = dataclasses.field(default=(), repr=False)
    """``(secret key name, armored private key)`` pairs."""

    @classmethod
    def from_secret_data(cls, data: Mapping[str, bytes]) -> SopsKeys:
        """``*.agekey`` values as age identities, ``*.asc`` as PGP keys; others ignored."""
        ages: list[str] = []
        pgps: list[tuple[str, bytes]] = []
        for name in sorted(data):
            value = data[name]
            if name.endswith(AGE_KEY_SUFFIX):
                try:
                    text = value.decode()
                except UnicodeDecodeError:
                    raise KeyImportError(name, "is not text") from None
                identities = [
                    line.strip()
                    for line in text.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")
                ]
                if not identities or not all(i.startswith("AGE-SECRET-KEY-") for i in identities):
                    raise KeyImportError(name, "holds no age identity (AGE-SECRET-KEY-...)")
                ages.extend(identities)
            elif name.endswith(PGP_KEY_SUFFIX):
                if b"-----BEGIN PGP PRIVATE KEY BLOCK-----" not in value:
                    raise KeyImportError(name, "holds no armored PGP private key")
                pgps.append((name, value))
        return cls(tuple(ages), tuple(pgps))

    def __bool__(self) -> bool:
        return bool(self.age_identities or self.pgp_keys)


class SopsDecryptor:
    """Runs ``sops decrypt`` with one set of keys; use it as a context manager.

    ``sops_binary`` is passed in (the agent's image ships sops; tests use the one
    ``fleet.localkube.toolchain`` builds). ``gpg_binary`` is needed only for PGP keys.
    """

    def __init__(
        self,
        keys: SopsKeys,
        *,
        sops_binary: Path,
        gpg_binary: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.keys = keys
        self.sops_binary = sops_binary
        self.gpg_binary = gpg_binary
        self.timeout = timeout
        self._private: Path | None = None
        self._env: dict[str, str] = {}

    def __enter__(self) -> SopsDecryptor:
        private = Path(tempfile.mkdtemp(prefix="fleet-sops-"))
        private.chmod(0o700)
        self._private = private
        env = {"PATH": "/usr/bin:/bin", "HOME": str(private), "LANG": "C.UTF-8"}
        try:
            if self.keys.age_identities:
                key_file = private / "keys.txt"
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write("\n".join(self.keys.age_identities) + "\n")
                env["SOPS_AGE_KEY_FILE"] = str(key_file)
            gnupg = private / "gnupg"
            gnupg.mkdir(mode=0o700)
            env["GNUPGHOME"] = str(gnupg)
            if self.keys.pgp_keys:
                self._import_pgp(env)
        except BaseException:
            self._cleanup()
            raise
        self._env = env
        return self

    def __exit__(self, *exc: object) -> None:
        self._cleanup()

    def _import_pgp(self, env: dict[str, str]) -> None:
        gpg = self.gpg_binary or (Path(found) if (found := shutil.which("gpg")) else None)
        if gpg is None:
            raise KeyImportError(self.keys.pgp_keys[0][0], "needs gpg, which is not installed")
        env["SOPS_GPG_EXEC"] = str(gpg)
        for name, armored in self.keys.pgp_keys:
            done = subprocess.run(
                [str(gpg), "--batch", "--no-tty", "--import"],
                input=armored,
                capture_output=True,
                env=env,
                timeout=self.timeout,
                check=False,
            )
            if done.returncode != 0:
                first = done.stderr.decode(errors="replace").strip().splitlines()[:1]
                raise KeyImportError(name, f"gpg could not import it ({' '.join(first)})")

    def _cleanup(self) -> None:
        private, self._private = self._private, None
        if private is None:
            return
        gnupg = private / "gnupg"
        gpgconf = shutil.which("gpgconf")
        if self.keys.pgp_keys and gpgconf:
            # gpg starts an agent per GNUPGHOME; stop it before its folder goes away.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [gpgconf, "--kill", "gpg-agent"],
                    env={"PATH": "/usr/bin:/bin", "GNUPGHOME": str(gnupg)},
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
        shutil.rmtree(private, ignore_errors=True)

    def decrypt(self, data: bytes, fmt: Format, *, name: str) -> bytes:
        """The plaintext of ``data`` (a whole sops file of format ``fmt``)."""
        if self._private is None:
            raise RuntimeError("SopsDecryptor is used outside its `with` block")
        if not self.keys:
            raise EncryptedWithoutDecryption(name, "is SOPS-encrypted and no keys are configured")
        if len(data) > MAX_FILE_SIZE:
            raise DecryptionError(name, f"is larger than {MAX_FILE_SIZE} bytes")
        fd, staged = tempfile.mkstemp(dir=self._private, prefix="in-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            args = [
                str(self.sops_binary),
                "decrypt",
                "--input-type",
                fmt,
                "--output-type",
                fmt,
                staged,
            ]
            try:
                done = subprocess.run(
                    args,
                    capture_output=True,
                    env=self._env,
                    cwd=self._private,
                    timeout=self.timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise DecryptionError(name, f"sops did not finish in {self.timeout:.0f}s") from None
            except OSError as error:
                raise DecryptionError(name, f"cannot run sops ({error.strerror})") from None
        finally:
            Path(staged).unlink(missing_ok=True)
        if done.returncode != 0:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            first = lines[0][:200] if lines else f"exit code {done.returncode}"
            raise DecryptionError(name, f"sops could not decrypt it: {first}")
        return done.stdout

    def decrypt_file(self, path: Path, fmt: Format, *, name: str) -> bool:
        """Decrypt ``path`` in place if it carries the marker of ``fmt``; True if it did."""
        info = path.lstat()
        if not path.is_file() or path.is_symlink():
            raise DecryptionError(name, "is not a regular file")
        if info.st_size > MAX_FILE_SIZE:
            raise DecryptionError(name, f"is larger than {MAX_FILE_SIZE} bytes")
        data = path.read_bytes()
        if not is_encrypted(data, fmt):
            return False
        plain = self.decrypt(data, fmt, name=name)
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "wb") as out:
            out.write(plain)
        return True


def decrypt_kustomization(decryptor: SopsDecryptor, root: Path, folder: Path) -> list[str]:
    """Decrypt, in place, what kustomize will read from the kustomization in ``folder``.

    Follows ``resources`` and ``components`` into sub-kustomizations as kustomize-controller
    does; decrypts ``secretGenerator`` ``files`` and ``envs`` and resource files that are
    sops documents. Paths stay inside ``root``. Returns the decrypted files relative to
    ``root``.
    """
    return list(_walk(root, folder, decryptor))


def find_encrypted(root: Path, folder: Path) -> list[str]:
    """What ``decrypt_kustomization`` would decrypt, for refusing a unit without decryption."""
    return list(_walk(root, folder, None))


def _walk(root: Path, start: Path, decryptor: SopsDecryptor | None) -> Iterator[str]:
    root = root.resolve()
    seen_dirs: set[Path] = set()
    seen_files: set[Path] = set()
    pending = [start.resolve()]
    while pending:
        directory = pending.pop()
        if directory in seen_dirs or not directory.is_dir():
            continue
        seen_dirs.add(directory)
        kustomization = next(
            (directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None
        )
        if kustomization is None:
            continue
        try:
            document = yaml.safe_load(kustomization.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            continue  # kustomize reports a broken kustomization better than we could
        if not isinstance(document, dict):
            continue
        for reference, fmt in _references(document):
            target = _inside(root, directory, reference)
            if target is None:
                continue
            if target.is_dir():
                pending.append(target)
                continue
            if target in seen_files or not target.is_file():
                continue
            seen_files.add(target)
            relative = target.relative_to(root).as_posix()
            if fmt is None:
                fmt = format_for_path(target.name)
                if fmt not in ("yaml", "json"):
                    continue
            if decryptor is None:
                if target.lstat().st_size <= MAX_FILE_SIZE and is_encrypted(
                    target.read_bytes(), fmt
                ):
                    yield relative
            elif decryptor.decrypt_file(target, fmt, name=relative):
                yield relative


def _references(document: Mapping[str, Any]) -> Iterator[tuple[str, Format | None]]:
    """``(path, format)`` of each file a kustomization reads; format None: by extension."""
    for field in ("resources", "components", "bases"):
        for item in document.get(field) or []:
            if isinstance(item, str):
                yield item, None
    for generator in document.get("secretGenerator") or []:
        if not isinstance(generator, dict):
            continue
        for source in generator.get("files") or []:
            if isinstance(source, str):
                key, _, path = source.partition("=")
                yield (path or key), format_for_path(key)
        envs = list(generator.get("envs") or [])
        if isinstance(generator.get("env"), str):
            envs.append(generator["env"])
        for env_file in envs:
            if isinstance(env_file, str):
                fmt = format_for_path(env_file)
                yield env_file, "dotenv" if fmt == "binary" else fmt


def _inside(root: Path, directory: Path, reference: str) -> Path | None:
    """``reference`` resolved from ``directory`` if it stays in ``root`` (remote URLs: None)."""
    if "://" in reference or reference.startswith("git@"):
        return None
    candidate = PurePosixPath(reference)
    if candidate.is_absolute():
        return None
    resolved = (directory / candidate).resolve()
    return resolved if resolved.is_relative_to(root) else None
