"""Managers share one identity through the store (bosun.security.cluster), on a real store:
the first manager writes it sealed, a manager with the manager token takes it, every other
token is refused before anything is written, rotation locks out the old token only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bosun.security import bootstrap as bs
from bosun.security.cluster import FILES, IDENTITY_KEY, KEY_FILE, ClusterIdentity, JoinRefused, settle
from bosun.security.tokens import SWARM_MANAGER, SWARM_WORKER, TokenAuthenticator, create_user_token
from bosun.store.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = await SQLiteStore.open(tmp_path / "shared.db")
    try:
        yield s
    finally:
        await s.close()


async def first(store: SQLiteStore, tmp_path: Path) -> ClusterIdentity:
    ident = await settle(store, tmp_path / "a")
    assert ident is not None
    return ident


def pki(d: Path, name: str) -> bytes:
    return (d / "pki" / name).read_bytes()


async def test_a_joining_manager_takes_the_first_ones_identity(store: SQLiteStore, tmp_path: Path) -> None:
    a = await first(store, tmp_path)
    kv = await store.get(IDENTITY_KEY)
    assert kv is not None
    for name in FILES:  # nothing in the store is readable without a key
        assert pki(tmp_path / "a", name)[20:60] not in kv.value
    tokens = a.tokens()
    b = await settle(store, tmp_path / "b", tokens["manager"])
    assert b is not None
    for name in (*FILES, KEY_FILE):
        assert pki(tmp_path / "b", name) == pki(tmp_path / "a", name), name
    assert b.tokens() == tokens
    # A restarted manager finds its key and serves the same identity again.
    again = await settle(store, tmp_path / "b")
    assert again is not None and again.key == a.key


@pytest.mark.parametrize("which", ["worker", "wrong", "malformed"])
async def test_other_tokens_are_refused_and_nothing_is_written(store: SQLiteStore, tmp_path: Path,
                                                               which: str) -> None:
    a = await first(store, tmp_path)
    token = {"worker": a.tokens()["worker"], "wrong": bs.new_token(a.ca_pem), "malformed": "SWMTKN-1-abc"}[which]
    with pytest.raises(JoinRefused) as e:
        await settle(store, tmp_path / "b", token)
    assert {"worker": "this is a worker join token", "wrong": "not valid for this cluster (wrong or rotated)",
            "malformed": "invalid join token"}[which] in str(e.value)
    assert not (tmp_path / "b" / "pki").exists()


async def test_a_swarm_manager_never_keeps_an_identity_of_its_own(store: SQLiteStore, tmp_path: Path) -> None:
    await first(store, tmp_path)
    with pytest.raises(JoinRefused, match="already holds a swarm"):
        await settle(store, tmp_path / "b", own_identity=False)
    assert not (tmp_path / "b" / "pki").exists()
    assert await settle(store, tmp_path / "c") is None  # a plain server: its own, with a warning


async def test_joining_an_empty_store_is_refused(store: SQLiteStore, tmp_path: Path) -> None:
    token = bs.new_token((await first(store, tmp_path / "elsewhere")).ca_pem)
    await store.delete(IDENTITY_KEY)
    with pytest.raises(JoinRefused, match="no cluster to join"):
        await settle(store, tmp_path / "b", token)


async def test_rotation_refuses_the_old_token_and_keeps_joined_managers(store: SQLiteStore, tmp_path: Path) -> None:
    a = await first(store, tmp_path)
    old = a.tokens()
    b = await settle(store, tmp_path / "b", old["manager"])
    assert b is not None
    new_manager = await a.rotate("manager")
    new_worker = await a.rotate("worker")
    assert new_manager != old["manager"] and new_worker != old["worker"]
    with pytest.raises(JoinRefused, match="wrong or rotated"):
        await settle(store, tmp_path / "c", old["manager"])
    # b joined with the old token: it restarts with its key and sees the new tokens.
    restarted = await settle(store, tmp_path / "b")
    assert restarted is not None and restarted.tokens() == {"worker": new_worker, "manager": new_manager}
    assert await settle(store, tmp_path / "c", new_manager) is not None


async def test_every_manager_follows_rotations_and_credentials(store: SQLiteStore, tmp_path: Path) -> None:
    a = await first(store, tmp_path)
    b = await settle(store, tmp_path / "b", a.tokens()["manager"])
    assert b is not None
    auth_a, auth_b = TokenAuthenticator(tmp_path / "a"), TokenAuthenticator(tmp_path / "b")
    a.follow(auth_a)
    b.follow(auth_b)
    try:
        old_worker = a.tokens()["worker"]
        who = auth_b.authenticate(f"Bearer {old_worker}")
        assert who is not None and who.name == SWARM_WORKER
        manager = auth_b.authenticate(f"Bearer {a.tokens()['manager']}")
        assert manager is not None and manager.name == SWARM_MANAGER
        # A node credential issued by a is accepted by b (an agent that moves keeps working).
        node_token = auth_a.issue_node_token("n1")
        await until(lambda: auth_b.authenticate(f"Bearer {node_token}") is not None)
        user = auth_b.authenticate(f"Bearer {node_token}")
        assert user is not None and user.node_name == "n1"
        # So is a user token made on a's machine (`bosun token create --user`, a file a's server never wrote).
        alice = create_user_token(tmp_path / "a", "alice", ["devs"])
        await until(lambda: auth_b.authenticate(f"Bearer {alice}") is not None)
        user = auth_b.authenticate(f"Bearer {alice}")
        assert user is not None and user.name == "alice" and "devs" in user.groups
        # A rotation made on a: b refuses the old worker token, takes the new one.
        new_worker = await a.rotate("worker")
        await until(lambda: auth_b.authenticate(f"Bearer {old_worker}") is None)
        assert auth_b.authenticate(f"Bearer {new_worker}") is not None
    finally:
        await a.stop()
        await b.stop()


async def until(check: object, within: float = 10.0) -> None:
    assert callable(check)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)
