"""Reading back what a driver and its shims leave on disk, for the oci and process drivers.

Why a module: both drivers keep a container's record as JSON files that a shim (which
outlives the agent) completes with ``shim.pid``, ``pid`` and ``exit.json``, and a sandbox's
as JSON too, so how such files become a :class:`ContainerStatus` or :class:`SandboxStatus`
is one piece of logic, not one per driver. These run on every status poll of every pod
worker: they stay plain functions over files, with no caching of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bosun.agent.runtime.base import ContainerState, ContainerStatus, DNSConfig, SandboxConfig, SandboxStatus
from bosun.agent.runtime.shim import proc_starttime


def read_json(path: Path) -> dict[str, Any] | None:
    """The object in ``path``; None when it is missing, half-written or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Written whole or not at all (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def alive(pid: int, starttime: str) -> bool:
    """Whether ``pid`` is still the process that had ``starttime`` (pids are reused)."""
    return pid > 0 and bool(starttime) and proc_starttime(pid) == starttime


def shim_alive(proc: subprocess.Popen[bytes] | None, cdir: Path) -> bool:
    """Whether the container's shim runs: our child ``proc`` if we started it, else the
    ``shim.pid`` it wrote in the container directory ``cdir`` (started before a restart)."""
    if proc is not None:
        return proc.poll() is None
    try:
        pid, starttime = (cdir / "shim.pid").read_text().split()
    except (OSError, ValueError):
        return False
    return alive(int(pid), starttime)


def shim_pid(proc: subprocess.Popen[bytes] | None, cdir: Path) -> tuple[int, str | None] | None:
    """The container's shim as (pid, starttime): our child ``proc`` (starttime None: its pid
    is not reused before we reap it), else what ``shim.pid`` in ``cdir`` says; None when unknown."""
    if proc is not None:
        return (proc.pid, None) if proc.returncode is None else None
    try:
        pid, starttime = (cdir / "shim.pid").read_text().split()
        return int(pid), starttime
    except (OSError, ValueError):
        return None


def sandbox_from(data: dict[str, Any]) -> SandboxStatus:
    """A sandbox saved as JSON (paths as strings) made a :class:`SandboxStatus` again."""
    st = SandboxStatus(**{k: v for k, v in data.items() if k in SandboxStatus.__dataclass_fields__})
    st.hosts_path = Path(data["hosts_path"]) if data.get("hosts_path") else None
    st.resolv_path = Path(data["resolv_path"]) if data.get("resolv_path") else None
    return st


def hosts_file(ip: str, hostname: str, aliases: Iterable[tuple[str, list[str]]], fqdn: str = "") -> str:
    """A pod's /etc/hosts: localhost, the pod's own name at ``ip`` (after its cluster FQDN
    when it has one), then its hostAliases."""
    own = f"{fqdn}\t{hostname}" if fqdn else hostname
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{ip}\t{own}"]
    lines += [f"{a}\t{' '.join(names)}" for a, names in aliases]
    return "\n".join(lines) + "\n"


def resolv_conf(dns: DNSConfig) -> str:
    """A pod's resolv.conf: exactly the DNS settings the agent decided (bosun.agent.poddns),
    the node's own included when the pod's policy says so."""
    lines = [f"nameserver {n}" for n in dns.nameservers]
    if dns.searches:
        lines.append("search " + " ".join(dns.searches))
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return "\n".join(lines) + "\n"


def host_network_hosts(aliases: Iterable[tuple[str, list[str]]], node_hosts: Path = Path("/etc/hosts")) -> str:
    """A hostNetwork pod's /etc/hosts: the node's, then the pod's hostAliases (kubelet's rule)."""
    try:
        text = node_hosts.read_text()
    except OSError:
        text = "127.0.0.1\tlocalhost\n"
    extra = [f"{a}\t{' '.join(names)}" for a, names in aliases]
    if extra:
        text = text.rstrip("\n") + "\n\n# Entries added by HostAliases.\n" + "\n".join(extra) + "\n"
    return text


def write_pod_files(status: SandboxStatus, config: SandboxConfig) -> None:
    """The pod's /etc/hosts and resolv.conf beside its sandbox (a host-network pod gets the
    node's own /etc/hosts plus its hostAliases, the kubelet's rule); then it is ready."""
    hosts = config.pod_dir / "etc-hosts"
    if config.host_network:
        hosts.write_text(host_network_hosts(config.host_aliases))
    else:
        hosts.write_text(hosts_file(status.ip, config.hostname, config.host_aliases, config.fqdn))
    resolv = config.pod_dir / "resolv.conf"
    resolv.write_text(resolv_conf(config.dns))
    status.hosts_path, status.resolv_path, status.ready = hosts, resolv, True


def recorded_sandboxes(root: Path) -> list[SandboxStatus]:
    """Every sandbox recorded under ``root/sandboxes`` (a half-written record is skipped)."""
    sroot = root / "sandboxes"
    if not sroot.is_dir():
        return []
    return [sandbox_from(data) for d in sorted(sroot.iterdir()) if (data := read_json(d / "sandbox.json"))]


def created_status(cid: str, meta: dict[str, Any]) -> ContainerStatus:
    """The status of a container from the record its driver wrote at creation."""
    return ContainerStatus(
        id=cid, pod_uid=meta["pod_uid"], name=meta["name"], attempt=int(meta["attempt"]),
        state=ContainerState.CREATED, image=meta["image"], image_id=meta["image_id"],
        created_at=float(meta["created_at"]), log_path=Path(meta["log_path"]),
        labels=dict(meta.get("labels") or {}))


def set_exited(st: ContainerStatus, done: dict[str, Any], started: float) -> None:
    """How the container ended, from the shim's ``exit.json`` (``started``: from its pid file)."""
    st.state = ContainerState.EXITED
    st.exit_code = int(done["exit_code"])
    st.started_at = float(done.get("started_at") or started or 0)
    st.finished_at = float(done["finished_at"])
    st.reason = str(done.get("reason") or "")
    st.message = str(done.get("message") or "")


def set_lost(st: ContainerStatus) -> None:
    """The shim was killed too (not by us) before writing ``exit.json``: how the container
    ended is lost, and Kubernetes reports that as 255 Unknown."""
    st.state = ContainerState.EXITED
    st.exit_code, st.reason, st.finished_at = 255, "Unknown", time.time()
    st.message = "container supervisor disappeared"
