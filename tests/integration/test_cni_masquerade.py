"""Outbound NAT for pods is one rule per podCIDR, installed once and removed on request,
however many pods are attached (the bridge plugin's per-pod ipMasq chains are gone)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bosun.agent.cni import Cni, CniConfig

pytestmark = [pytest.mark.timeout(30),
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/lib/cni/bridge")
                                 or not shutil.which("unshare"), reason="needs root and CNI plugins")]


def _nat() -> list[str]:
    return subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout.splitlines()


@pytest.fixture
def cni(tmp_path: Path) -> Iterator[Cni]:
    tag = uuid.uuid4().hex[:6]
    c = Cni(tmp_path / "cni", CniConfig(pod_cidr=f"10.76.{int(tag[:2], 16)}.0/24", cluster_cidr="10.76.0.0/16",
                                        bridge=f"bm{tag}", network_name=f"masqtest{tag}"))
    try:
        yield c
    finally:
        for f in tmp_path.iterdir():
            subprocess.run(["umount", str(f)], capture_output=True)
        subprocess.run(["ip", "link", "del", f"bm{tag}"], capture_output=True)
        subprocess.run(["iptables", "-t", "nat", "-D", "POSTROUTING", "-s", c.config.pod_cidr, "-m", "comment",
                        "--comment", f"bosun pod masquerade {c.config.pod_cidr}", "-j", c.masquerade_chain],
                       capture_output=True)
        subprocess.run(["iptables", "-t", "nat", "-F", c.masquerade_chain], capture_output=True)
        subprocess.run(["iptables", "-t", "nat", "-X", c.masquerade_chain], capture_output=True)


def _netns(tmp: Path, name: str) -> str:
    path = tmp / name
    path.touch()
    subprocess.run(["unshare", f"--net={path}", "true"], check=True)
    return str(path)


async def test_one_rule_for_all_pods_then_removed(cni: Cni, tmp_path: Path) -> None:
    chain, cidr = cni.masquerade_chain, cni.config.pod_cidr
    for _ in range(2):  # idempotent: a restarted agent calls it again
        await cni.ensure_masquerade()
        cni._masq_ready = False
    for i in range(3):
        await cni.add(f"m{i}", _netns(tmp_path, f"m{i}"))
    nat = _nat()
    jumps = [r for r in nat if r.startswith("-A POSTROUTING") and f"-j {chain}" in r]
    assert len(jumps) == 1 and f"-s {cidr}" in jumps[0]
    # Pods of other nodes (the cluster CIDR) see the pod's own address too.
    assert [r for r in nat if r.startswith(f"-A {chain}")] == [
        f"-A {chain} -d {cidr} -j RETURN", f"-A {chain} -d 10.76.0.0/16 -j RETURN",
        f"-A {chain} -d 224.0.0.0/4 -j RETURN", f"-A {chain} -j MASQUERADE"]
    # No per-pod chains from the bridge plugin (they carry the network name in a comment).
    assert not [r for r in nat if cni.config.network_name in r]
    for i in range(3):
        await cni.delete(f"m{i}")
    await cni.remove_masquerade()
    await cni.remove_masquerade()
    assert not [r for r in _nat() if chain in r]
