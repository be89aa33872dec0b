"""``bosun agent --cleanup`` and ``bosun up --reset``: remove everything a node left on this
machine, without starting it and without the cluster.

Why every runtime: a node started with ``--runtime auto`` may have run oci or process, and
one started with ``--runtime docker`` the docker driver (its engine named by DOCKER_HOST); the
data dir says which ones by the directories it holds. The drivers' own records find containers
(shims, cgroups, root mounts) and sandboxes (namespace mounts, CNI attachments, cgroups);
the network record (bosun.agent.netstate) finds the node's nftables tables, routes and DNS
address. Closing a driver with no pod left removes the bridge and the cgroup parent too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from bosun.agent import netstate
from bosun.agent.config import AgentConfig
from bosun.agent.leftovers import Removed, remove_pods
from bosun.agent.runtime.base import DriverError
from bosun.agent.runtime.select import make_driver, oci_available

RUNTIMES = ("oci", "process", "docker")


def cleanup_node(config: AgentConfig, node_ip: str, **oci_options: Any) -> None:
    """Remove it all and say what was removed, in one line."""
    found = [name for name in RUNTIMES if (config.runtime_dir / name).is_dir()]
    if "oci" in found and not oci_available():
        raise click.ClickException(f"{config.runtime_dir / 'oci'} holds containers of the oci runtime, which "
                                   "only root with crun or runc installed can remove")

    async def main() -> tuple[Removed, bool]:
        total = Removed()
        for name in found:
            try:
                driver = make_driver(name, config.runtime_dir, node_ip, **(oci_options if name != "process" else {}))
            except DriverError as e:
                raise click.ClickException(f"{config.runtime_dir / name}: {e.message}") from None
            await driver.start()
            try:
                removed = await remove_pods(driver, config.pods_dir, grace=0)
            finally:
                await driver.close()
            total.containers += removed.containers
            total.sandboxes += removed.sandboxes
            total.pod_dirs += removed.pod_dirs
        network = await netstate.remove_recorded(config.data_dir / "network")
        return total, network

    total, network = asyncio.run(main())
    left = _mounts_under(config.data_dir)
    if left:
        raise click.ClickException(f"removed {total}, but {len(left)} mount(s) under {config.data_dir} remain, "
                                   f"e.g. {left[0]}")
    click.echo(f"removed {total}{' and the node network rules' if network else ''} from {config.data_dir}")


def _mounts_under(path: Path) -> list[str]:
    root = str(path.resolve())
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].encode().decode("unicode_escape")
        if mp == root or mp.startswith(root + "/"):
            out.append(mp)
    return out
