"""Bearer tokens: admin, join tokens, persistence across restarts."""

from __future__ import annotations

import re
import stat
import time
from pathlib import Path

from bosun.security.tokens import (
    TokenAuthenticator,
    admin_token_path,
    create_join_token,
    ensure_admin_token,
    join_tokens_path,
)


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
    assert auth.authenticate(f"Bearer {tok}") == "admin"
    assert auth.authenticate(f"bearer {tok}") == "admin"
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
    assert again.authenticate(f"Bearer {admin}") == "admin"
    assert again.authenticate(f"Bearer {join}") == "system:node-bootstrap"


def test_join_token_format_and_auth(tmp_path: Path) -> None:
    auth = TokenAuthenticator(tmp_path)
    tok = create_join_token(tmp_path)
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", tok)
    assert stat.S_IMODE(join_tokens_path(tmp_path).stat().st_mode) == 0o600
    # Created after the authenticator started: still accepted (file is re-read).
    assert auth.authenticate(f"Bearer {tok}") == "system:node-bootstrap"
    tid, secret = tok.split(".")
    wrong = secret[:-1] + ("a" if secret[-1] != "a" else "b")
    assert auth.authenticate(f"Bearer {tid}.{wrong}") is None
    assert auth.authenticate("Bearer zzzzzz.0123456789abcdef") is None


def test_expired_join_token_refused(tmp_path: Path) -> None:
    auth = TokenAuthenticator(tmp_path)
    short = create_join_token(tmp_path, ttl_seconds=1)
    long = create_join_token(tmp_path, ttl_seconds=3600)
    assert auth.authenticate(f"Bearer {short}") == "system:node-bootstrap"
    time.sleep(1.1)
    assert auth.authenticate(f"Bearer {short}") is None
    assert auth.authenticate(f"Bearer {long}") == "system:node-bootstrap"


def test_extra_tokens(tmp_path: Path) -> None:
    auth = TokenAuthenticator(tmp_path)
    auth.add_token("sa-token-123", "system:serviceaccount:default:builder")
    assert auth.authenticate("Bearer sa-token-123") == "system:serviceaccount:default:builder"
    assert auth.authenticate("Bearer sa-token-124") is None
