"""The CNI runner with the real plugins: ADD gives a namespace an address on the bridge, DEL
undoes everything (veth, lease, port rules), also when the namespace is already gone."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bosun.agent.cni import Cni, CniConfig, CniError, HostPort, pod_ip

pytestmark = [pytest.mark.timeout(30),
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/lib/cni/bridge")
                                 or not shutil.which("unshare"), reason="needs root and CNI plugins")]


@dataclass
class Net:
    cni: Cni
    tmp: Path
    bridge: str
    network: str

    def netns(self, name: str) -> str:
        path = self.tmp / name
        path.touch()
        subprocess.run(["unshare", f"--net={path}", "true"], check=True)
        return str(path)

    def leases(self) -> list[str]:
        d = self.cni.ipam_dir / self.network
        return sorted(p.name for p in d.iterdir() if p.name != "lock" and not p.name.startswith("last_")) \
            if d.is_dir() else []


def _sh(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True).stdout


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    tag = uuid.uuid4().hex[:6]
    n = Net(Cni(tmp_path / "cni", CniConfig(pod_cidr=f"10.77.{int(tag[:2], 16)}.0/24", bridge=f"bc{tag}",
                                            network_name=f"cnitest{tag}")), tmp_path, f"bc{tag}", f"cnitest{tag}")
    try:
        yield n
    finally:
        for f in tmp_path.iterdir():
            subprocess.run(["umount", str(f)], capture_output=True)
        subprocess.run(["ip", "link", "del", n.bridge], capture_output=True)
    assert not [r for r in _sh("iptables-save").splitlines() if n.network in r]


async def test_add_then_delete_leaves_nothing(net: Net) -> None:
    ns = net.netns("pod1")
    result = await net.cni.add("pod1", ns, [HostPort(host_port=18181, container_port=80)])
    ip = pod_ip(result)
    assert ip.startswith("10.77.")
    inside = _sh("nsenter", f"--net={ns}", "ip", "-4", "-o", "addr", "show")
    assert f"eth0    inet {ip}/24" in inside and "lo    inet 127.0.0.1/8" in inside
    assert net.leases() == [ip]
    assert _sh("ip", "-o", "link", "show", "master", net.bridge).strip()
    assert [r for r in _sh("iptables-save", "-t", "nat").splitlines() if net.network in r]
    assert net.cni.known() == ["pod1"]
    await net.cni.delete("pod1")
    await net.cni.delete("pod1")  # idempotent
    assert net.leases() == [] and net.cni.known() == []
    assert not _sh("ip", "-o", "link", "show", "master", net.bridge).strip()
    assert not [r for r in _sh("iptables-save", "-t", "nat").splitlines() if net.network in r]


async def test_delete_after_the_namespace_is_gone(net: Net) -> None:
    ns = net.netns("pod2")
    await net.cni.add("pod2", ns)
    _sh("umount", ns)
    await net.cni.delete("pod2")
    assert net.leases() == [] and net.cni.known() == []


async def test_failed_add_is_undone(net: Net) -> None:
    with pytest.raises(CniError):
        await net.cni.add("pod3", str(net.tmp / "no-such-netns"))
    assert net.leases() == [] and net.cni.known() == []


async def test_each_pod_gets_its_own_address(net: Net) -> None:
    ips = {pod_ip(await net.cni.add(f"p{i}", net.netns(f"p{i}"))) for i in range(3)}
    assert len(ips) == 3
    for i in range(3):
        await net.cni.delete(f"p{i}")
    assert net.leases() == []
