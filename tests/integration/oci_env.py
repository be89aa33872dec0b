"""Shared by the oci driver tests: a driver in a temp dir with its own bridge, podCIDR,
CNI network name and cgroup parent, and a teardown that removes everything and then
lists what was left behind (mounts, cgroups, veths, iptables rules, IP leases, processes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bosun.agent.runtime.base import ContainerConfig, PortMapping, Resources, SandboxConfig, SecurityConfig
from bosun.agent.runtime.oci import OciDriver

NEEDS = [shutil.which("crun") or shutil.which("runc"), shutil.which("unshare"),
         os.path.exists("/usr/lib/cni/bridge")]
requires_oci = pytest.mark.skipif(os.geteuid() != 0 or not all(NEEDS),
                                  reason="needs root, crun/runc, util-linux and containernetworking-plugins")


@dataclass
class OciEnv:
    driver: OciDriver
    root: Path
    bridge: str
    network: str
    cgroup_parent: str
    subnet: str

    def sandbox(self, name: str = "web", *, host_network: bool = False, ports: list[PortMapping] | None = None,
                resources: Resources | None = None, host_ipc: bool = False) -> SandboxConfig:
        uid = str(uuid.uuid4())
        return SandboxConfig(pod_uid=uid, pod_name=name, namespace="default", hostname=name,
                             pod_dir=self.root / "pods" / uid, host_network=host_network, ports=ports or [],
                             resources=resources or Resources(), host_ipc=host_ipc)

    def container(self, pod_uid: str, name: str, command: list[str], *, image: str = "host",
                  resources: Resources | None = None, security: SecurityConfig | None = None,
                  **kw: Any) -> ContainerConfig:
        return ContainerConfig(name=name, pod_uid=pod_uid, attempt=0, image=image, command=command,
                               log_path=self.root / "logs" / f"{pod_uid}-{name}.log",
                               resources=resources or Resources(), security=security or SecurityConfig(), **kw)


async def wait_for(pred: Callable[[], Any], within: float = 10.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = pred()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(step)


def _sh(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def leftovers(env: OciEnv, node_too: bool = False) -> list[str]:
    """Everything the driver could have left on the host, as readable lines; ``node_too``:
    also what a node keeps while it has pods (the bridge, the cgroup parent)."""
    out = []
    if node_too:
        if Path(f"/sys/class/net/{env.bridge}").exists():
            out.append(f"bridge {env.bridge}")
        out += [f"cgroup parent in {m}" for m in Path("/sys/fs/cgroup").iterdir() if (m / env.cgroup_parent).exists()]
    root = os.path.realpath(env.root)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp.startswith(root + "/"):
            out.append(f"mount {mp}")
    for mnt in Path("/sys/fs/cgroup").iterdir():
        if (mnt / env.cgroup_parent).exists():
            subs = [str(p) for p in (mnt / env.cgroup_parent).rglob("*") if p.is_dir()]
            if subs:
                out.append(f"cgroups {subs}")
    if (Path("/sys/fs/cgroup") / env.cgroup_parent).exists():
        out.append("cgroup v2 dir")
    veths = _sh("ip", "-o", "link", "show", "master", env.bridge).strip()
    if veths:
        out.append(f"veths {veths}")
    for table in ("nat", "filter"):
        for rule in _sh("iptables-save", "-t", table).splitlines():
            if env.network in rule:
                out.append(f"iptables {rule}")
    leases = env.driver.cni.ipam_dir / env.network
    if leases.is_dir():
        left = [p.name for p in leases.iterdir() if p.name != "lock" and not p.name.startswith("last_reserved")]
        if left:
            out.append(f"leases {left}")
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                if root.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    out.append(f"process {pid}")
    return out


async def clean(env: OciEnv) -> None:
    d = env.driver
    for st in await d.list_containers():
        with contextlib.suppress(Exception):
            await d.stop_container(st.id, 0)
        await d.remove_container(st.id)
    for sb in await d.list_sandboxes():
        await d.remove_sandbox(sb.id)


def _remove_node_setup(env: OciEnv) -> None:
    """What a node keeps between pods (the bridge, the cgroup parent) and the temp dir."""
    subprocess.run(["ip", "link", "del", env.bridge], capture_output=True)
    for mnt in Path("/sys/fs/cgroup").iterdir():
        with contextlib.suppress(OSError):
            (mnt / env.cgroup_parent).rmdir()
    shutil.rmtree(env.driver.cni.ipam_dir / env.network, ignore_errors=True)
    shutil.rmtree(env.root, ignore_errors=True)


@contextlib.asynccontextmanager
async def oci_env(**options: Any) -> AsyncIterator[OciEnv]:
    tag = uuid.uuid4().hex[:6]
    root = Path(tempfile.mkdtemp(prefix="bosun-oci-"))
    octet = int(tag[:2], 16) % 200 + 20
    env = OciEnv(driver=None, root=root, bridge=f"bt{tag}", network=f"bosuntest{tag}",  # type: ignore[arg-type]
                 cgroup_parent=f"bosun-test-{tag}", subnet=f"10.{octet}.{int(tag[2:4], 16)}.0/24")
    env.driver = OciDriver(root / "oci", "127.0.0.1", pod_cidr=env.subnet, bridge=env.bridge,
                           network_name=env.network, cgroup_parent=env.cgroup_parent, **options)
    await env.driver.start()
    try:
        yield env
    finally:
        left: list[str] = ["teardown failed"]
        try:
            await clean(env)
            await env.driver.close()
            left = leftovers(env, node_too=True)
        finally:
            _remove_node_setup(env)
        assert not left, f"left behind: {left}"
