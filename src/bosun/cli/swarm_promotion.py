"""A worker's own manager: started when ``bosun node promote`` gives its node the manager
role, stopped when ``bosun node demote`` takes it away, as Docker's promotion turns a worker
into a manager without rejoining.

The worker's process watches its own Node. Once the manager label is there it asks a manager
(``POST /bosun/v1/swarm/promotion``, with the node's own credential: only a promoted node is
answered) for what a joining manager needs, the manager token and the store, and starts a
control plane beside its agent that joins the swarm exactly as ``bosun swarm join`` with the
manager token does (the cluster's identity is taken from the store). The Node is annotated
as running a promoted manager for as long as it does. (A manager that ``swarm init``/``join``
started is demoted the other way round: :mod:`bosun.cli.swarm_demotion`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bosun.api.server import ServerConfig
from bosun.client.rest import ApiError, Client
from bosun.controlplane import ControlPlane, ControlPlaneOptions
from bosun.membership import MANAGER_LABEL, PROMOTED_ANNOTATION
from bosun.security.authz.defaults import SWARM_PROMOTION_PATH
from bosun.store.etcdnode import SCHEME, EtcdMember, EtcdMemberError, MemberAddress, start_member
from bosun.store.etcdnode import leave as leave_etcd
from bosun.swarm.joining import embedded_ca
from bosun.swarm.nodes import NODES

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0


@dataclass
class PromotionSettings:
    """How this worker would serve as a manager."""

    data_dir: Path
    node_name: str
    listen: str  # ADDR:PORT of its API, for the other machines
    lease_duration: float
    etcd: MemberAddress  # its etcd member's, in a swarm on its managers' own members


class PromotedManager:
    """Follows the node's role: ``on_change(role, url)`` is told of each start and stop."""

    def __init__(self, client: Client, settings: PromotionSettings,
                 on_change: Callable[[str, str], None]) -> None:
        self.client = client
        self.settings = settings
        self.on_change = on_change
        self.plane: ControlPlane | None = None
        self.member: EtcdMember | None = None
        self._last_error = ""

    async def run(self) -> None:
        while True:
            try:
                await self.step()
                self._last_error = ""
            except asyncio.CancelledError:
                raise
            except (ApiError, OSError, ValueError, EtcdMemberError) as e:  # a manager away, a refused start: try again
                if str(e) != self._last_error:  # said once, not every poll (a swarm on SQLite: 409)
                    log.warning("promotion: %s", e)
                    self._last_error = str(e)
            await asyncio.sleep(POLL_SECONDS)

    async def step(self) -> None:
        node = await self.client.get(NODES, self.settings.node_name)
        wanted = MANAGER_LABEL in (node["metadata"].get("labels") or {})
        if wanted and self.plane is None:
            await self._start()
        elif not wanted and self.plane is not None:
            await self.stop()

    async def _start(self) -> None:
        s = self.settings
        answer = await self.client.request("POST", SWARM_PROMOTION_PATH, body={})
        store, ca = str(answer["store"]), embedded_ca(answer)
        if store.startswith(SCHEME) and ca is not None:
            self.member, store = await start_member(s.node_name, s.data_dir, s.etcd, (store, ca))
        config = ServerConfig(data_dir=s.data_dir, listen=s.listen, store_url=store,
                              join_token=str(answer["token"]), swarm=True)
        url = f"https://{s.listen}"
        plane = ControlPlane(config, ControlPlaneOptions(advertise_url=url, lease_duration=s.lease_duration,
                                                         node_name=s.node_name))
        try:
            await plane.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await plane.stop()
            await self._leave_etcd()
            raise
        self.plane = plane
        await self._annotate(True)
        self.on_change("manager", url)

    async def stop(self) -> None:
        """Stop the manager this process started (demoted, or the process ends)."""
        plane, self.plane = self.plane, None
        if plane is None:
            return
        await plane.stop()
        await self._leave_etcd()
        with contextlib.suppress(ApiError, OSError):
            await self._annotate(False)
        self.on_change("worker", "")

    async def _leave_etcd(self) -> None:
        member, self.member = self.member, None
        if member is not None:
            await leave_etcd(member)

    async def _annotate(self, promoted: bool) -> None:
        value = "true" if promoted else None
        await self.client.patch(NODES, self.settings.node_name,
                                {"metadata": {"annotations": {PROMOTED_ANNOTATION: value}}})
