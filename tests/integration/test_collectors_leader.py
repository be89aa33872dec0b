"""The garbage collector and the namespace controller act only in the server that holds the
`bosun-controlplane` Lease; when that server stops, the other one takes over."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import RunningServer, start_server

from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.controllers._common import resource
from bosun.controlplane import ControlPlane, ControlPlaneOptions

CMS = resource("", "v1", "configmaps")
NAMESPACES = resource("", "v1", "namespaces")

# No controllers, no scheduler: the Lease is held for the API server's collectors alone.
OPTIONS = ControlPlaneOptions(controllers=["none"], scheduler=False, lease_duration=3.0)


def plane(srv: RunningServer) -> ControlPlane:
    assert isinstance(srv.server, ControlPlane)
    return srv.server


def leads(srv: RunningServer) -> bool:
    return plane(srv).ctx is not None


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def cascade(srv: RunningServer, ns: str, owner_name: str) -> None:
    """Owner and dependent ConfigMaps; deleting the owner must take the dependent with it."""

    async def go() -> None:
        async with Client.from_kubeconfig(srv.kubeconfig) as c:
            owner = await c.create(CMS, {"apiVersion": "v1", "kind": "ConfigMap",
                                         "metadata": {"name": owner_name}}, ns)
            ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner_name,
                   "uid": owner["metadata"]["uid"]}
            dep: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": f"{owner_name}-dep", "ownerReferences": [ref]}}
            await c.create(CMS, dep, ns)
            await c.delete(CMS, owner_name, ns)
            deadline = time.monotonic() + 15
            while True:
                try:
                    await c.get(CMS, f"{owner_name}-dep", ns)
                except ApiError as exc:
                    assert exc.status == 404
                    return
                assert time.monotonic() < deadline, "the dependent was not collected"
                await asyncio.sleep(0.05)

    asyncio.run(go())


def test_only_the_leader_collects_and_the_other_takes_over(
    tmp_path: Path, etcd_endpoint: str, servers: list[RunningServer]
) -> None:
    store = f"etcd://{etcd_endpoint}"
    a = start_server(tmp_path / "a", store_url=store, options=OPTIONS)
    servers.append(a)
    # The session's etcd is shared: a server of an earlier test that did not give the Lease up
    # (killed, or stopped mid-renewal) holds it until it expires (15 s by default).
    wait_for("a to lead", lambda: leads(a), timeout=40.0)
    # Servers on one etcd share the encryption key file (as they share node tokens).
    (tmp_path / "b" / "pki").mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "pki" / "encryption.yaml", tmp_path / "b" / "pki" / "encryption.yaml")
    b = start_server(tmp_path / "b", store_url=store, options=OPTIONS)
    servers.append(b)

    ns = f"gc-{uuid.uuid4().hex[:8]}"

    async def make_ns() -> None:
        async with Client.from_kubeconfig(b.kubeconfig) as c:
            await c.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    asyncio.run(make_ns())
    # The request goes to b, the work is a's: b runs no collector at all.
    cascade(b, ns, "first")
    assert leads(a) and not leads(b)  # b runs no controller at all: the collection was a's

    # The leader stops (and gives the Lease up): b's collectors start and do the work.
    a.stop()
    servers.remove(a)
    wait_for("b to lead", lambda: leads(b))
    cascade(b, ns, "second")

    # Namespace deletion, which needs the namespace finalizer, works on b too.
    async def delete_ns() -> None:
        async with Client.from_kubeconfig(b.kubeconfig) as c:
            await c.delete(NAMESPACES, ns)
            deadline = time.monotonic() + 15
            while True:
                try:
                    await c.get(NAMESPACES, ns)
                except ApiError as exc:
                    assert exc.status == 404
                    return
                assert time.monotonic() < deadline, "the namespace was not finalized"
                await asyncio.sleep(0.05)

    asyncio.run(delete_ns())


def test_controllers_flag_can_turn_the_collectors_off(tmp_path: Path, servers: list[RunningServer]) -> None:
    opts = ControlPlaneOptions(controllers=["none", "-garbagecollector"], scheduler=False, lease_duration=3.0)
    srv = start_server(tmp_path / "s", options=opts)
    servers.append(srv)
    wait_for("the control plane to lead", lambda: leads(srv))
    assert "namespace" in plane(srv).components and "crdfinalizer" in plane(srv).components
    assert "garbagecollector" not in plane(srv).components
