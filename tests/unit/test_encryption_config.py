"""The EncryptionConfiguration file: which resources it seals, how keys are chosen, and the
errors a bad file gets (before any server starts)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bosun.security.encryption import (
    DecryptError,
    EncryptionConfigError,
    ensure_config,
    load_config,
    parse_config,
)

K32 = base64.b64encode(b"k" * 32).decode()
K16 = base64.b64encode(b"j" * 16).decode()


def conf(resources: str, providers: str) -> str:
    return (
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
        f"  - resources: {resources}\n    providers:\n{providers}"
    )


AESGCM = f"      - aesgcm:\n          keys:\n            - {{name: a, secret: {K32}}}\n"


def test_resource_names_and_wildcards() -> None:
    enc = parse_config(conf("[secrets, deployments.apps]", AESGCM))
    table = enc.table(["secrets", "configmaps", "deployments.apps", "replicasets.apps"])
    assert sorted(table) == ["deployments.apps", "secrets"]
    assert sorted(parse_config(conf("['*.apps']", AESGCM)).table(["secrets", "deployments.apps"])) == [
        "deployments.apps"]
    assert sorted(parse_config(conf("['*.']", AESGCM)).table(["secrets", "deployments.apps"])) == ["secrets"]
    assert len(parse_config(conf("['*.*']", AESGCM)).table(["secrets", "deployments.apps"])) == 2
    # identity alone seals nothing: the resource stays off the hot path.
    assert parse_config(conf("[secrets]", "      - identity: {}\n")).table(["secrets"]) == {}


def test_first_key_writes_every_key_reads_and_the_store_key_is_bound() -> None:
    two = f"      - aesgcm:\n          keys:\n            - {{name: new, secret: {K16}}}\n" \
          f"            - {{name: old, secret: {K32}}}\n"
    old_only = parse_config(conf("[secrets]", AESGCM.replace("name: a", "name: old"))).table(["secrets"])["secrets"]
    both = parse_config(conf("[secrets]", two)).table(["secrets"])["secrets"]
    sealed_old = old_only.to_store("/registry/secrets/ns/x", b'{"a":1}')
    assert sealed_old.startswith(b"k8s:enc:aesgcm:v1:old:")
    assert both.from_store("/registry/secrets/ns/x", sealed_old) == b'{"a":1}'
    assert both.is_stale(sealed_old)
    sealed_new = both.to_store("/registry/secrets/ns/x", b'{"a":2}')
    assert sealed_new.startswith(b"k8s:enc:aesgcm:v1:new:") and not both.is_stale(sealed_new)
    # A sealed value moved to another key does not open (the key is authenticated data).
    with pytest.raises(DecryptError, match="does not open it"):
        both.from_store("/registry/secrets/ns/y", sealed_new)
    # Plain JSON from before encryption needs identity in the list.
    with pytest.raises(DecryptError, match="no identity provider"):
        both.from_store("/registry/secrets/ns/x", b'{"a":0}')


def test_aescbc_round_trip_and_wrong_key() -> None:
    cbc = f"      - aescbc:\n          keys:\n            - {{name: c, secret: {K32}}}\n"
    t = parse_config(conf("[secrets]", cbc)).table(["secrets"])["secrets"]
    sealed = t.to_store("/k", b'{"x":"' + b"y" * 100 + b'"}')
    assert sealed.startswith(b"k8s:enc:aescbc:v1:c:")
    assert t.from_store("/k", sealed).startswith(b'{"x":')
    other = base64.b64encode(os.urandom(32)).decode()
    wrong = parse_config(conf("[secrets]", cbc.replace(K32, other))).table(["secrets"])["secrets"]
    with pytest.raises(DecryptError, match='aescbc key "c"'):
        wrong.from_store("/k", sealed)


@pytest.mark.parametrize(("providers", "message"), [
    (f"      - aesgcm:\n          keys:\n            - {{name: a, secret: {base64.b64encode(b'x' * 10).decode()}}}\n",
     "16, 24 or 32 bytes"),
    (f"      - secretbox:\n          keys:\n            - {{name: a, secret: {K32}}}\n", "not supported"),
    ("      - aesgcm:\n          keys:\n            - {name: a, secret: '!!notbase64'}\n", "not valid base64"),
    (f"      - aesgcm:\n          keys:\n            - {{name: a, secret: {K32}}}\n"
     f"            - {{name: a, secret: {K16}}}\n", "listed twice"),
    ("      - aesgcm: {}\n", "at least one key"),
])
def test_bad_files_are_refused(providers: str, message: str) -> None:
    with pytest.raises(EncryptionConfigError, match=message):
        parse_config(conf("[secrets]", providers))


def test_wrong_kind_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EncryptionConfigError, match="EncryptionConfiguration"):
        parse_config("apiVersion: v1\nkind: ConfigMap\n")
    with pytest.raises(EncryptionConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_generated_file_is_private_and_made_once(tmp_path: Path) -> None:
    path = ensure_config(tmp_path)
    assert path == tmp_path / "pki" / "encryption.yaml"
    assert path.stat().st_mode & 0o777 == 0o600
    first = path.read_text()
    assert ensure_config(tmp_path).read_text() == first  # never regenerated
    t = load_config(path).table(["secrets", "configmaps"])
    assert list(t) == ["secrets"]
    assert t["secrets"].to_store("/k", b"{}").startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert t["secrets"].from_store("/k", b'{"plain":1}') == b'{"plain":1}'  # identity listed last
    assert [p.name for p in tmp_path.joinpath("pki").iterdir()] == ["encryption.yaml"]
