"""Swarm join tokens and join addresses, as typed by a user (bosun.security.bootstrap,
bosun.swarm.joining, bosun.cli.swarm_cmd)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bosun.cli.swarm_cmd import listen_address
from bosun.security.bootstrap import BadToken, SealError, ca_digest, new_key, new_token, parse_token, seal, unseal
from bosun.security.pki import ensure_pki
from bosun.swarm.joining import JoinError, manager_url


def test_a_token_carries_the_ca_digest_and_a_secret(tmp_path: Path) -> None:
    ca = ensure_pki(tmp_path, []).ca_cert_pem
    token = new_token(ca)
    parts = parse_token(f"  {token}\n")
    assert token.startswith("SWMTKN-1-") and parts.ca_digest == ca_digest(ca) and len(parts.secret) == 25
    assert new_token(ca) != token


@pytest.mark.parametrize(("text", "why"), [
    ("abcdef.0123456789abcdef", "must start with SWMTKN-1-"),
    ("SWMTKN-1-abc", "malformed"),
    ("SWMTKN-1-" + "0" * 50 + "-" + "A" * 25, "malformed"),
    ("SWMTKN-1-" + "0" * 50 + "-" + "a" * 24, "malformed"),
])
def test_bad_tokens_are_named(text: str, why: str) -> None:
    with pytest.raises(BadToken, match=why):
        parse_token(text)


def test_sealed_data_opens_only_with_its_key_and_context() -> None:
    key = new_key()
    blob = seal(key, b"secret", b"ctx")
    assert b"secret" not in blob and unseal(key, blob, b"ctx") == b"secret"
    with pytest.raises(SealError):
        unseal(new_key(), blob, b"ctx")
    with pytest.raises(SealError):
        unseal(key, blob, b"other")


@pytest.mark.parametrize(("address", "url"), [
    ("10.0.0.1:2377", "https://10.0.0.1:2377"), ("manager", "https://manager:6443"),
    ("::1", "https://[::1]:6443"), ("[::1]:7", "https://[::1]:7"), ("https://m:1/", "https://m:1"),
])
def test_join_addresses(address: str, url: str) -> None:
    assert manager_url(address) == url


@pytest.mark.parametrize("address", ["m:0", "m:99999", ":5"])
def test_bad_join_addresses(address: str) -> None:
    with pytest.raises(JoinError, match="invalid address"):
        manager_url(address)


def test_advertise_addresses() -> None:
    assert listen_address("10.0.0.1") == "10.0.0.1:6443"
    assert listen_address("10.0.0.1:7000") == "10.0.0.1:7000"
    assert listen_address("fe80::1") == "[fe80::1]:6443"
    assert listen_address("").endswith(":6443")
