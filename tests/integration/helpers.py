"""What many integration tests do the same way: poll for a condition, play a node agent in
the background, open a client with a namespace of the test's own, start a real node agent.

Kept in one place so that a fix (a longer last look, a cleanup that was missing) reaches
every test, and so that each test file shows only what is particular to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from tests.conftest import RunningServer

from bosun.agent.config import AgentConfig
from bosun.api.registry import Resource, find
from bosun.client.errors import ApiError
from bosun.client.kubeconfig import ClusterConfig
from bosun.client.rest import Client
from bosun.controllers._common import resource

Obj = dict[str, Any]
PODS = resource("", "v1", "pods")
NAMESPACES = resource("", "v1", "namespaces")
ACCOUNTS = resource("", "v1", "serviceaccounts")
CONFIGMAPS = resource("", "v1", "configmaps")
ROOT_CA = "kube-root-ca.crt"


def named(name: str) -> Resource:
    """A resource by the name kubectl takes ("configmaps", "deployments"), which must exist."""
    found = find(name)
    assert found is not None, name
    return found


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 15.0, what: str = "",
                     step: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy, and return that. It is looked at once
    more after the deadline, so a slow machine that paused the test is not a failure."""
    deadline = time.monotonic() + within
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or check}: last={last!r}")
        await asyncio.sleep(step)


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def stamp() -> str:
    """Now, as the API writes lastTransitionTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BackgroundLoop(ABC):
    """Runs ``_loop`` as a task for the life of an ``async with`` block: the tests' stand-ins
    for a scheduler or node agent, which must stop even when the test fails."""

    _task: asyncio.Task[None] | None = None

    @abstractmethod
    async def _loop(self) -> None:
        """What the stand-in does until the block ends (each test file's own)."""

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def client_in(plane: RunningServer, namespace: str, delete: bool = False) -> AsyncIterator[Client]:
    """A client of ``plane`` with ``namespace`` created; with ``delete`` the namespace goes
    again afterwards (for controllers that would otherwise keep working on its objects)."""
    async with Client.from_kubeconfig(plane.kubeconfig) as c:
        await c.create(NAMESPACES, {"metadata": {"name": namespace}})
        await namespace_furnished(c, namespace)
        try:
            yield c
        finally:
            if delete:
                with contextlib.suppress(ApiError):  # the test may have deleted it itself
                    await c.delete(NAMESPACES, namespace)


@contextlib.asynccontextmanager
async def temporary_namespace(client: Client, prefix: str) -> AsyncIterator[str]:
    """A new namespace named ``prefix-<random>``, deleted afterwards (if it is still there)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await create_namespace(client, name)
    try:
        yield name
    finally:
        with contextlib.suppress(ApiError):
            await client.delete(NAMESPACES, name)


# -- real node agents ----------------------------------------------------------------------------


def client_for(server: RunningServer) -> Client:
    """A client as a node agent makes it (token and CA, no kubeconfig file)."""
    return Client(ClusterConfig(server=server.url, ca_data=Path(server.ca_path).read_bytes(), token=server.token))


def lines_until_ready(proc: subprocess.Popen[str], within: float) -> list[str]:
    """The lines a `bosun` command printed up to its ``ready`` line (the last one when it came;
    the caller checks), read until it ends its output or ``within`` seconds pass."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and (line := proc.stdout.readline()):
        lines.append(line)
        if line.strip() == "ready":
            break
    return lines


BARE_POD_CIDR = "10.99.0.0/24"


def agent_config(data_dir: Path, name: str, **kw: Any) -> AgentConfig:
    """An agent on loopback with short back-off and relist times, so tests run in seconds.
    Its podCIDR is explicit (``BARE_POD_CIDR`` unless given): these tests run a bare API
    server, without the node IPAM controller an agent otherwise waits for. (Process-driver
    pods share the host's network, so nodes sharing the value changes nothing.) It leaves
    the host's network alone unless ``node_network=True`` is given (agents of tests running
    at once share the root namespace: see AgentConfig.node_network)."""
    kw.setdefault("pod_cidr", BARE_POD_CIDR)
    kw.setdefault("node_network", False)
    # Drivers that tell exits themselves get no safety relist within a test: an exit noticed
    # only by the relist would time the test out rather than pass late.
    kw.setdefault("events_relist_interval", 3600.0)
    return AgentConfig(node_name=name, data_dir=data_dir, listen_host="127.0.0.1", listen_port=0,
                       backoff_base=0.3, backoff_max=1.0, relist_interval=0.2, status_flush_interval=0.05, **kw)


def node_name(tmp_path: Path, prefix: str, keep: int = 12) -> str:
    """A node name of the test's own (from its tmp_path), valid as a DNS label."""
    return f"{prefix}-{tmp_path.name[-keep:].lower().strip('_-')}".replace("_", "-")


async def namespace_furnished(client: Client, namespace: str, within: float = 30) -> None:
    """Wait for what the server's controllers put in every new namespace, the ``default``
    ServiceAccount and the ``kube-root-ca.crt`` ConfigMap, as upstream's e2e framework waits
    for the account: a test then sees the namespace as it stays, not half furnished."""
    deadline = time.monotonic() + within
    for res, name in ((ACCOUNTS, "default"), (CONFIGMAPS, ROOT_CA)):
        while True:
            try:
                await client.get(res, name, namespace)
                break
            except ApiError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


def made_by_test(items: list[Obj]) -> list[Obj]:
    """``items`` without the ConfigMap every namespace is given (:func:`namespace_furnished`)."""
    return [o for o in items if o["metadata"]["name"] != ROOT_CA]


async def create_namespace(client: Client, name: str) -> None:
    """A new namespace, once the server's controllers have furnished it."""
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    await namespace_furnished(client, name)


async def create_pod(client: Client, ns: str, node: str, name: str, containers: list[Obj],
                     grace: int = 1, **spec: Any) -> Obj:
    """A pod bound to ``node`` whose containers default to the process runtime's "host" image."""
    for c in containers:
        c.setdefault("image", "host")
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "containers": containers, "terminationGracePeriodSeconds": grace, **spec}}
    created: Obj = await client.create(PODS, body, ns)
    return created


async def pod_when(client: Client, ns: str, name: str, check: Callable[[Obj], bool], within: float = 20,
                   tolerate_errors: bool = False) -> Obj:
    """The pod once ``check`` holds for it. ``tolerate_errors`` keeps polling through failed
    reads (for tests that restart the API server or the agent meanwhile)."""
    deadline = time.monotonic() + within
    pod: Obj = {}
    while time.monotonic() < deadline:
        try:
            pod = await client.get(PODS, name, ns)
            if check(pod):
                return pod
        except Exception:
            if not tolerate_errors:
                raise
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out; last status: {pod.get('status')}")


async def ignoring_gone(call: Awaitable[Any]) -> None:
    """Await ``call``, ignoring 404/409: the object went or changed under a background loop."""
    try:
        await call
    except ApiError as e:
        if e.status not in (404, 409):
            raise
