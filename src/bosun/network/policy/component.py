"""The node's NetworkPolicy enforcer: watches Pods, Namespaces and NetworkPolicies, and keeps
this node's policy chains equal to what :func:`rules.pod_rules` says (computed incrementally
by :mod:`.incremental`), sending only what changed in one nftables transaction.

Bursts of changes (a Deployment's 50 pods getting addresses) are coalesced into one sync per
``min_interval``; the committed state is held in memory and never read back from the kernel,
except once at start, to remove chains a previous agent left that are no longer wanted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from bosun.agent.runtime import spawn
from bosun.aio import cancel_and_wait
from bosun.api.registry import must_by_plural
from bosun.client.informer import Informer
from bosun.network.base import NodeNetworkContext
from bosun.network.policy import render
from bosun.network.policy.incremental import IncrementalRules
from bosun.network.policy.render import Wanted

log = logging.getLogger(__name__)
PODS = must_by_plural("", "v1", "pods")
NAMESPACES = must_by_plural("", "v1", "namespaces")
POLICIES = must_by_plural("networking.k8s.io", "v1", "networkpolicies")


class NftError(RuntimeError):
    pass


async def nft(commands: list[str]) -> str:
    """Run ``commands`` as one atomic nftables transaction (all or nothing)."""
    code, out, err = await spawn.run(["nft", "-f", "-"], input=("\n".join(commands) + "\n").encode())
    if code != 0:
        raise NftError(err.decode(errors="replace").strip())
    return out.decode()


class PolicyEnforcer:
    def __init__(self, ctx: NodeNetworkContext, min_interval: float = 0.1) -> None:
        self.ctx = ctx
        self.min_interval = min_interval
        self.informers: dict[str, Informer] = {r.plural: ctx.informers.get(r) for r in (PODS, NAMESPACES, POLICIES)}
        self.committed = Wanted()
        self.rules = IncrementalRules()
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for inf in self.informers.values():
            inf.add_handler(self._changed, self._updated, self._changed)
        await self.ctx.informers.start()
        await self._reset()
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="netpol-sync")

    async def stop(self, *, remove: bool = False) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if remove:
            with contextlib.suppress(NftError):
                await nft(render.teardown())
            self.committed = Wanted()

    def _changed(self, obj: Any) -> None:
        self._dirty.set()

    def _updated(self, old: Any, new: Any) -> None:
        self._dirty.set()

    async def _reset(self) -> None:
        """Start from a known kernel state: the base objects, and none of the pod chains a
        previous run (or a failed transaction) may have left, found by listing once."""
        await nft(render.base_objects())
        listing = await nft([f"list table {render.TABLE}"])  # once per start, never per sync
        stale = sorted(set(re.findall(r"chain (pol-(?:in|out)-[0-9a-f]+)", listing)))
        await nft([f"flush map {render.TABLE} {m}" for m in render.MAPS.values()]
                  + [c for chain in stale for c in (f"flush chain {render.TABLE} {chain}",
                                                     f"delete chain {render.TABLE} {chain}")])
        self.committed = Wanted()

    def wanted(self) -> Wanted:
        pods = self.informers["pods"].list()
        local = [p for p in pods if (p.get("spec") or {}).get("nodeName") == self.ctx.node_name]
        return self.rules.wanted(local, pods, self.informers["namespaces"].list(),
                                 self.informers["networkpolicies"].list())

    async def sync(self) -> None:
        new = self.wanted()
        cmds = render.transaction(self.committed, new)
        if cmds:
            await nft(cmds)
        self.committed = new

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.min_interval)
            self._dirty.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("network policy sync failed; retrying from a clean state")
                self._dirty.set()
                await asyncio.sleep(1.0)
                with contextlib.suppress(NftError):
                    await self._reset()
