"""What the node's network parts were started with, kept on disk so that they can be removed
without the cluster: ``bosun agent --cleanup`` and ``bosun up --reset`` run with no API server
to ask for the podCIDR and the cluster's network settings, yet must take the nftables
tables, the DNS address and the overlay's device and routes off the host.

The record is written when the agent programs the node's network and deleted once a drained
stop removed it; a record still there means rules were left (a SIGKILL, a second Ctrl-C) and
the next start adopts them, or a cleanup removes them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from bosun.client.kubeconfig import ClusterConfig
from bosun.client.rest import Client
from bosun.client.shared import SharedInformers
from bosun.network.base import NodeNetworkContext
from bosun.network.config import NetworkConfig
from bosun.network.node import components

log = logging.getLogger(__name__)
RECORD = "node.json"


def save(ctx: NodeNetworkContext) -> None:
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    record = {"node_name": ctx.node_name, "node_ip": ctx.node_ip, "pod_cidr": ctx.pod_cidr,
              "network": ctx.network.to_data(), "upstream_dns": list(ctx.upstream_dns)}
    tmp = ctx.state_dir / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(record))
    tmp.replace(ctx.state_dir / RECORD)


def forget(state_dir: Path) -> None:
    (state_dir / RECORD).unlink(missing_ok=True)


async def remove_recorded(state_dir: Path) -> bool:
    """Remove what the recorded network parts programmed; False when nothing is recorded."""
    try:
        record = json.loads((state_dir / RECORD).read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as e:
        log.warning("network record %s unreadable (%s): nothing removed", state_dir / RECORD, e)
        return False
    # Never connected: the parts only need the context's settings to find their own rules.
    client = Client(ClusterConfig(server="https://127.0.0.1:1"))
    try:
        ctx = NodeNetworkContext(client=client, informers=SharedInformers(client), node_name=record["node_name"],
                                 node_ip=record["node_ip"], pod_cidr=record["pod_cidr"],
                                 network=NetworkConfig.from_data(record.get("network") or {}),
                                 state_dir=state_dir, upstream_dns=tuple(record.get("upstream_dns") or ()))
        for part in reversed(components(ctx)):
            try:
                await part.stop(remove=True)
            except Exception as e:  # one part's failure must not keep the others' rules
                log.warning("removing %s: %s", type(part).__name__, e)
    finally:
        await client.close()
    forget(state_dir)
    return True
