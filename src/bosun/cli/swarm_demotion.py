"""A manager that ``bosun swarm init``/``join`` started, demoted from afar by ``bosun node
demote``: as with Docker, the machine stays in the swarm as a worker.

Its process watches its own Node, as a promoted worker's does (:mod:`bosun.cli.swarm_promotion`).
Once the manager label is gone it hands its agent's transport over to the other managers
(:mod:`bosun.client.handover`: the agent keeps running, its node stays Ready, its tasks are
untouched), stops its control plane and takes its etcd member out of the swarm's, then
carries on as a worker: it follows the managers that come and go, and runs a manager again
if promoted. ``bosun node demote`` refuses beforehand what Docker refuses: the last manager,
or a demotion that would leave fewer reachable managers than a quorum of the rest.
"""

from __future__ import annotations

import asyncio
import logging

from bosun.client.rest import TRANSPORT_ERRORS, ApiError, Client
from bosun.membership import MANAGER_LABEL
from bosun.security.authz.defaults import SWARM_JOIN_PATH
from bosun.swarm.nodes import NODES

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0


async def _other_managers(client: Client, own_url: str) -> list[str]:
    """The API URLs of the swarm's other live managers (asked with the node's credential)."""
    answer = await client.request("POST", SWARM_JOIN_PATH, body={})
    own = own_url.rstrip("/")
    return [str(u).rstrip("/") for u in answer.get("managers") or [] if str(u).rstrip("/") != own]


async def wait_for_demotion(client: Client, node_name: str, own_url: str) -> list[str]:
    """Returns once ``node_name`` lost the manager role while another manager runs: the
    other managers' URLs, which its agent moves to. A demotion with no other manager
    running (a swarm whose others are all down) is not obeyed until one is back: stopping
    would leave nothing to serve."""
    said = ""
    while True:
        await asyncio.sleep(POLL_SECONDS)
        try:
            node = await client.get(NODES, node_name)
            if MANAGER_LABEL in (node["metadata"].get("labels") or {}):
                continue
            others = await _other_managers(client, own_url)
        except (ApiError, *TRANSPORT_ERRORS) as e:
            log.info("asking for this node's role: %s", e)
            continue
        if others:
            return others
        if not said:
            said = "demoted, but no other manager runs: this one carries on until one does"
            log.warning(said)
