"""Bytes a pod received and sent: the counters of its network namespace's interfaces (all but
loopback), kubelet's ``pods[].network`` of the Summary API.

``/proc/thread-self/net/dev`` lists the interfaces of the reading thread's network namespace,
so a short-lived thread enters the pod's namespace (``setns`` moves only the calling thread),
reads it and ends, as :mod:`bosun.agent.netns_dial` does for sockets. A pod on the host
network (no namespace of its own) has no counters of its own and reports none.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bosun.agent.netns_dial import in_netns
from bosun.agent.runtime.base import RuntimeDriver

Counters = dict[str, tuple[int, int]]  # interface -> (rx bytes, tx bytes)


def parse_net_dev(text: str) -> Counters:
    """``/proc/net/dev``'s table: two header lines, then ``iface: rx_bytes ... (8) tx_bytes ...``."""
    out: Counters = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if sep and len(fields) >= 9 and name.strip() != "lo":
            out[name.strip()] = (int(fields[0]), int(fields[8]))
    return out


def _read_in(netns: str) -> Counters:
    def read() -> Counters:
        with open("/proc/thread-self/net/dev", encoding="ascii") as f:
            return parse_net_dev(f.read())

    return in_netns(netns, read)


async def netns_counters(netns: str) -> Counters:
    """The interfaces' counters of the network namespace at path ``netns``."""
    return await asyncio.to_thread(_read_in, netns)


async def add_pod_network(driver: RuntimeDriver, pods: dict[str, dict[str, Any]], ts: str) -> None:
    """Set ``network`` on each Summary API pod entry (by pod uid) whose sandbox has a
    network namespace of its own."""
    if not pods:
        return
    for sb in await driver.list_sandboxes():
        pod = pods.get(sb.pod_uid)
        if pod is None or not sb.netns_path or not sb.ready or "network" in pod:
            continue
        try:
            counters = await netns_counters(sb.netns_path)
        except OSError:
            continue  # the sandbox went away meanwhile
        pod["network"] = {"time": ts, "rxBytes": sum(rx for rx, _ in counters.values()),
                          "txBytes": sum(tx for _, tx in counters.values()),
                          "interfaces": [{"name": n, "rxBytes": rx, "txBytes": tx}
                                         for n, (rx, tx) in sorted(counters.items())]}
