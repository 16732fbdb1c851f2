"""SOPS decryption with the real sops and age: files encrypted here, decrypted by fleet.

Keys come from the real ``age-keygen``; files are encrypted by the real ``sops`` as a user
would before committing them; the decrypted tree is then built by the real kustomize.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from fleet.localkube import toolchain
from fleet.models.kustomization import KustomizationSpec
from fleet.render import kustomize
from fleet.render import sops as fsops

PLAINTEXT = "hunter2-plaintext-never-leaks"


def _bin(name: str) -> str:
    path = toolchain.binary(name)
    assert os.access(path, os.X_OK), f"{path} is not built: run make k8s-bin"
    return str(path)


def age_key(folder: Path, name: str) -> tuple[bytes, str]:
    """``(identity file content, recipient)`` from the real age-keygen."""
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / f"{name}.txt"
    subprocess.run([_bin("age-keygen"), "-o", str(key_file)], check=True, capture_output=True)
    recipient = subprocess.run(
        [_bin("age-keygen"), "-y", str(key_file)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return key_file.read_bytes(), recipient


def encrypt(path: Path, recipient: str, fmt: str, *, regex: str | None = None) -> None:
    """Encrypt ``path`` in place with sops for ``recipient`` (as a user does before a commit)."""
    args = [_bin("sops"), "encrypt", "--age", recipient, "--input-type", fmt]
    args += ["--output-type", fmt, "--in-place"]
    if regex:
        args += ["--encrypted-regex", regex]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(path.parent)}
    subprocess.run([*args, str(path)], check=True, capture_output=True, env=env)
    assert PLAINTEXT.encode() not in path.read_bytes()


SECRET = textwrap.dedent(f"""\
    apiVersion: v1
    kind: Secret
    metadata:
      name: db
      namespace: apps
    stringData:
      password: {PLAINTEXT}
    """)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, str]]:
    folder = tmp_path_factory.mktemp("age")
    return {"right": age_key(folder, "right"), "wrong": age_key(folder, "wrong")}


@pytest.fixture
def repo(tmp_path: Path, keys: dict[str, tuple[bytes, str]]) -> Path:
    """apps/: an encrypted Secret resource and a secretGenerator with encrypted inputs."""
    root = tmp_path / "repo"
    apps = root / "apps"
    apps.mkdir(parents=True)
    (apps / "kustomization.yaml").write_text(
        textwrap.dedent("""\
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            namespace: apps
            resources: [secret.yaml, cm.yaml]
            generatorOptions: {disableNameSuffixHash: true}
            secretGenerator:
              - name: generated
                envs: [app.env]
                files: [config.json, token=token.bin]
            """)
    )
    (apps / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n")
    (apps / "secret.yaml").write_text(SECRET)
    (apps / "app.env").write_text(f"API_KEY={PLAINTEXT}\nMODE=prod\n")
    (apps / "config.json").write_text(f'{{"password": "{PLAINTEXT}"}}\n')
    (apps / "token.bin").write_bytes(f"token:{PLAINTEXT}".encode())
    recipient = keys["right"][1]
    encrypt(apps / "secret.yaml", recipient, "yaml", regex="^(data|stringData)$")
    encrypt(apps / "app.env", recipient, "dotenv")
    encrypt(apps / "config.json", recipient, "json")
    encrypt(apps / "token.bin", recipient, "binary")
    return root


def decryptor(key: bytes | None) -> fsops.SopsDecryptor:
    data = {"identity.agekey": key} if key is not None else {}
    return fsops.SopsDecryptor(
        fsops.SopsKeys.from_secret_data(data), sops_binary=toolchain.binary("sops")
    )


def render(root: Path) -> dict[str, dict[str, object]]:
    spec = KustomizationSpec.model_validate({"interval": "5m", "prune": True, "path": "apps"})
    objects = kustomize.render(root, spec, {}).objects
    return {str(o["metadata"]["name"]): o for o in objects}


def test_yaml_dotenv_json_and_binary_inputs_are_decrypted_before_kustomize(
    repo: Path, keys: dict[str, tuple[bytes, str]]
) -> None:
    encrypted = ["apps/app.env", "apps/config.json", "apps/secret.yaml", "apps/token.bin"]
    assert sorted(fsops.find_encrypted(repo, repo / "apps")) == encrypted
    with decryptor(keys["right"][0]) as d:
        decrypted = fsops.decrypt_kustomization(d, repo, repo / "apps")
    assert sorted(decrypted) == encrypted
    assert fsops.find_encrypted(repo, repo / "apps") == []
    objects = render(repo)
    assert objects["db"]["stringData"] == {"password": PLAINTEXT}
    assert "sops" not in objects["db"]
    data = objects["generated"]["data"]
    assert isinstance(data, dict)
    generated = {k: base64.b64decode(str(v)).decode() for k, v in data.items()}
    assert generated["API_KEY"] == PLAINTEXT
    assert generated["MODE"] == "prod"
    assert json.loads(generated["config.json"]) == {"password": PLAINTEXT}
    assert generated["token"] == f"token:{PLAINTEXT}"


def test_wrong_age_key_fails_naming_the_file_without_plaintext(
    repo: Path, keys: dict[str, tuple[bytes, str]]
) -> None:
    with decryptor(keys["wrong"][0]) as d, pytest.raises(fsops.DecryptionError) as caught:
        fsops.decrypt_kustomization(d, repo, repo / "apps")
    assert caught.value.file.startswith("apps/")
    assert "sops could not decrypt it" in str(caught.value)
    assert PLAINTEXT not in str(caught.value)
    assert PLAINTEXT not in repr(caught.value)


def test_tampered_ciphertext_fails_without_plaintext(
    repo: Path, keys: dict[str, tuple[bytes, str]]
) -> None:
    secret = repo / "apps" / "secret.yaml"
    document = yaml.safe_load(secret.read_text())
    document["metadata"]["name"] = "renamed"  # unencrypted, but covered by the MAC
    secret.write_text(yaml.safe_dump(document))
    with decryptor(keys["right"][0]) as d, pytest.raises(fsops.DecryptionError) as caught:
        fsops.decrypt_kustomization(d, repo, repo / "apps")
    assert caught.value.file == "apps/secret.yaml"
    assert PLAINTEXT not in str(caught.value)


def test_encrypted_files_without_keys_are_refused_naming_the_file(repo: Path) -> None:
    with decryptor(None) as d, pytest.raises(fsops.EncryptedWithoutDecryption) as caught:
        fsops.decrypt_kustomization(d, repo, repo / "apps")
    assert caught.value.file.startswith("apps/")
    assert "no keys are configured" in str(caught.value)


def test_rendered_ciphertext_is_refused_without_decryption(repo: Path) -> None:
    objects = list(render(repo).values())
    with pytest.raises(fsops.EncryptedWithoutDecryption, match=r"Secret/apps/db is SOPS-encrypted"):
        fsops.refuse_encrypted_objects(objects, "./apps")
    fsops.refuse_encrypted_objects([o for o in objects if o["kind"] == "ConfigMap"], "./apps")


def test_keys_exist_only_while_the_decryptor_is_open(keys: dict[str, tuple[bytes, str]]) -> None:
    with decryptor(keys["right"][0]) as d:
        key_file = Path(d._env["SOPS_AGE_KEY_FILE"])
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert key_file.parent.stat().st_mode & 0o777 == 0o700
        assert "SOPS_AGE_KEY" not in d._env
        assert set(d._env) <= {"PATH", "HOME", "LANG", "SOPS_AGE_KEY_FILE", "GNUPGHOME"}
    assert not key_file.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bad.agekey": b"not a key"}, r"bad\.agekey: holds no age identity"),
        ({"bad.asc": b"not a key"}, r"bad\.asc: holds no armored PGP private key"),
    ],
)
def test_unusable_keys_name_the_secret_key(data: dict[str, bytes], message: str) -> None:
    with pytest.raises(fsops.KeyImportError, match=message):
        fsops.SopsKeys.from_secret_data(data)


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    gpg = shutil.which("gpg")
    assert gpg, "gpg is not installed: run make system-deps (Debian package gnupg)"
    env = {"PATH": "/usr/bin:/bin", "GNUPGHOME": str(home)}
    base = [gpg, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]
    return subprocess.run(
        [*base, *args], input=stdin, env=env, check=True, capture_output=True, timeout=120
    ).stdout


def test_pgp_key_from_an_asc_entry_decrypts(tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    try:
        _gpg(home, "--quick-gen-key", "fleet test <test@fleet.invalid>", "future-default")
        listing = _gpg(home, "--list-secret-keys", "--with-colons").decode()
        fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line[:3] == "fpr")
        armored = _gpg(home, "--armor", "--export-secret-keys", fingerprint)
        secret = tmp_path / "secret.yaml"
        secret.write_text(SECRET)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GNUPGHOME": str(home)}
        subprocess.run(
            [_bin("sops"), "encrypt", "--pgp", fingerprint, "--in-place", str(secret)],
            check=True,
            capture_output=True,
            env=env,
        )
    finally:
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"], env={"GNUPGHOME": str(home)}, check=False
        )
    assert PLAINTEXT.encode() not in secret.read_bytes()
    keys = fsops.SopsKeys.from_secret_data({"flux.asc": armored})
    with fsops.SopsDecryptor(keys, sops_binary=toolchain.binary("sops")) as d:
        assert d.decrypt_file(secret, "yaml", name="secret.yaml")
        agent_home = Path(d._env["GNUPGHOME"])
    assert yaml.safe_load(secret.read_text())["stringData"]["password"] == PLAINTEXT
    assert not agent_home.exists()
