"""What a stopped `bosun up` (oci runtime) may not leave on the machine, as readable lines:
mounts under its data dir, processes of its containers, its pods' cgroups, network
namespaces and IP leases, and the node's nftables table. Shared by the stop tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
LEASES = Path("/var/lib/cni/networks")


def _sh(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout


def _netns() -> set[str]:
    return {line.split()[0] for line in _sh("ip", "netns", "list").splitlines() if line.strip()}


@dataclass
class HostState:
    """Taken before the test: what other users of the machine already had (network
    namespaces, a `bosun` nftables table of another node) is not counted as left behind."""

    netns: set[str] = field(default_factory=lambda: _netns())
    nft_bosun: bool = field(default_factory=lambda: "table ip bosun" in _sh("nft", "list", "tables"))


def left_behind(data_dir: Path, marker: str, pod_uids: list[str], before: HostState) -> list[str]:
    out: list[str] = []
    root = os.path.realpath(data_dir)
    out += [f"mount {line.split()[1]}" for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(root + "/")]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if marker.encode() in cmd or root.encode() in cmd:
                    text = cmd.replace(b"\0", b" ").decode(errors="replace")
                    out.append(f"process {pid}: {text[:120]}")
    for uid in pod_uids:
        out += [f"cgroup {p}" for pattern in (f"*/pod{uid}", f"*/*/pod{uid}") for p in CGROUP_ROOT.glob(pattern)]
        if LEASES.is_dir():
            for lease in LEASES.glob("*/*"):
                with contextlib.suppress(OSError):
                    if lease.is_file() and uid in lease.read_text():
                        out.append(f"IP lease {lease}")
    # Pod network namespaces are nsfs mounts under the data dir (counted above); a named one
    # (`ip netns`) may only be another user's of this machine, unless it names one of our pods.
    out += [f"network namespace {n}" for n in _netns() - before.netns if any(u[:8] in n for u in pod_uids)]
    if not before.nft_bosun and "table ip bosun" in _sh("nft", "list", "tables"):
        out.append("nftables table ip bosun")
    return out
