"""Bearer tokens: admin, join tokens, user tokens, node credentials, persistence across restarts."""

from __future__ import annotations

import re
import stat
import time
from pathlib import Path

from bosun.security.identity import User
from bosun.security.tokens import (
    TokenAuthenticator,
    admin_token_path,
    create_join_token,
    create_user_token,
    ensure_admin_token,
    join_tokens_path,
    node_tokens_path,
    users_path,
)


def name(user: User | None) -> str | None:
    return None if user is None else user.name


def test_admin_token_is_stored_private_and_reused(tmp_path: Path) -> None:
    tok = ensure_admin_token(tmp_path)
    assert len(tok) >= 40
    path = admin_token_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_admin_token(tmp_path) == tok
    assert ensure_admin_token(tmp_path / "other") != tok


def test_authenticate_admin(tmp_path: Path) -> None:
    tok = ensure_admin_token(tmp_path)
    auth = TokenAuthenticator(tmp_path)
    assert name(auth.authenticate(f"Bearer {tok}")) == "bosun-admin"
    assert name(auth.authenticate(f"bearer {tok}")) == "bosun-admin"
    assert auth.authenticate(f"Bearer {tok}x") is None
    assert auth.authenticate(f"Basic {tok}") is None
    assert auth.authenticate("Bearer ") is None
    assert auth.authenticate("") is None
    assert auth.authenticate(None) is None


def test_authenticator_survives_restart(tmp_path: Path) -> None:
    tok = TokenAuthenticator(tmp_path)  # first start creates the admin token
    del tok
    admin = admin_token_path(tmp_path).read_text().strip()
    join = create_join_token(tmp_path)
    again = TokenAuthenticator(tmp_path)
    assert name(again.authenticate(f"Bearer {admin}")) == "bosun-admin"
    assert name(again.authenticate(f"Bearer {join}")) == f"system:bootstrap:{join[:6]}"


def test_join_token_format_and_auth(tmp_path: Path) -> None:
    auth = TokenAuthenticator(tmp_path)
    tok = create_join_token(tmp_path)
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", tok)
    assert stat.S_IMODE(join_tokens_path(tmp_path).stat().st_mode) == 0o600
    # Created after the authenticator started: still accepted (file is re-read).
    assert name(auth.authenticate(f"Bearer {tok}")) == f"system:bootstrap:{tok[:6]}"
    tid, secret = tok.split(".")
    wrong = secret[:-1] + ("a" if secret[-1] != "a" else "b")
    assert auth.authenticate(f"Bearer {tid}.{wrong}") is None
    assert auth.authenticate("Bearer zzzzzz.0123456789abcdef") is None


def test_expired_join_token_refused(tmp_path: Path) -> None:
    auth = TokenAuthenticator(tmp_path)
    short = create_join_token(tmp_path, ttl_seconds=1)
    long = create_join_token(tmp_path, ttl_seconds=3600)
    assert name(auth.authenticate(f"Bearer {short}")) == f"system:bootstrap:{short[:6]}"
    time.sleep(1.1)
    assert auth.authenticate(f"Bearer {short}") is None
    assert name(auth.authenticate(f"Bearer {long}")) == f"system:bootstrap:{long[:6]}"


def test_extra_tokens(tmp_path: Path) -> None:
    auth = TokenAuthenticator(tmp_path)
    auth.add_token("sa-token-123", "system:serviceaccount:default:builder")
    assert name(auth.authenticate("Bearer sa-token-123")) == "system:serviceaccount:default:builder"
    assert auth.authenticate("Bearer sa-token-124") is None


def test_groups_of_each_credential(tmp_path: Path) -> None:
    auth = TokenAuthenticator(tmp_path)
    admin = auth.authenticate(f"Bearer {ensure_admin_token(tmp_path)}")
    assert admin is not None and admin.is_master
    join = auth.authenticate(f"Bearer {create_join_token(tmp_path)}")
    assert join is not None and join.groups == ("system:bootstrappers", "system:authenticated")
    assert not join.is_master and join.node_name is None


def test_user_tokens_from_another_process(tmp_path: Path) -> None:
    auth = TokenAuthenticator(tmp_path)
    tok = create_user_token(tmp_path, "alice", ["devs"])  # as `bosun token create --user` does
    alice = auth.authenticate(f"Bearer {tok}")
    assert alice is not None and alice.name == "alice" and alice.groups == ("devs", "system:authenticated")
    assert tok not in users_path(tmp_path).read_text()  # only a digest is kept
    assert stat.S_IMODE(users_path(tmp_path).stat().st_mode) == 0o600
    assert auth.authenticate(f"Bearer {tok}x") is None


def test_node_credential_replaces_the_previous_one(tmp_path: Path) -> None:
    auth = TokenAuthenticator(tmp_path)
    first = auth.issue_node_token("n1")
    node = auth.authenticate(f"Bearer {first}")
    assert node is not None and node.node_name == "n1" and "system:nodes" in node.groups
    second = auth.issue_node_token("n1")
    assert auth.authenticate(f"Bearer {first}") is None
    assert name(TokenAuthenticator(tmp_path).authenticate(f"Bearer {second}")) == "system:node:n1"
    assert first not in node_tokens_path(tmp_path).read_text()
