"""Pod sandboxes of the oci driver: the pod's namespaces (made without a process, see podns),
its cgroup, its CNI attachment to the node bridge, and its /etc/hosts, resolv.conf and
hostname; recorded in ``sandboxes/<pod uid>/sandbox.json`` so that a restarted agent finds
them (and a half-made one can be undone).

Why a module: a sandbox's network and namespaces are one job, apart from the containers
that join them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bosun.agent import cgroups
from bosun.agent.cni import Cni, CniError, HostPort, pod_ip
from bosun.agent.runtime import pid_holder
from bosun.agent.runtime.base import DriverError, SandboxConfig, SandboxStatus
from bosun.agent.runtime.disk_state import read_json, recorded_sandboxes, sandbox_from, write_json, write_pod_files
from bosun.agent.runtime.oci_mounts import unmount
from bosun.agent.runtime.podns import make_namespaces_async
from bosun.agent.trash import Trash
from bosun.aio import off_loop

log = logging.getLogger(__name__)


class OciSandboxes:
    def __init__(self, root: Path, node_ip: str, cgroup_tree: cgroups.Cgroups, trash: Trash, cni: Cni) -> None:
        self.root = root
        self.node_ip = node_ip
        self.cgroups = cgroup_tree
        self.trash = trash
        self.cni = cni  # replaced once the node's podCIDR is known (OciDriver.set_pod_network)

    def data(self, sandbox_id: str) -> dict[str, Any] | None:
        """The sandbox's record (its namespaces' paths, cgroup, readiness); None when unknown."""
        return read_json(self.dir(sandbox_id) / "sandbox.json")

    def dir(self, sandbox_id: str) -> Path:
        return self.root / "sandboxes" / sandbox_id

    def _save(self, st: SandboxStatus, extra: dict[str, Any]) -> None:
        data = asdict(st)
        data["hosts_path"] = str(st.hosts_path) if st.hosts_path else None
        data["resolv_path"] = str(st.resolv_path) if st.resolv_path else None
        data.update(extra)
        write_json(self.dir(st.id) / "sandbox.json", data)

    async def run(self, config: SandboxConfig) -> SandboxStatus:
        sid = config.pod_uid
        existing = read_json(self.dir(sid) / "sandbox.json")
        if existing and existing.get("ready"):
            return sandbox_from(existing)
        if existing:
            await self.remove(sid)
        sdir = self.dir(sid)
        nsdir = sdir / "ns"
        cg = self.cgroups.rel(f"pod{sid}")
        extra: dict[str, Any] = {"ipc_ns": "" if config.host_ipc else str(nsdir / "ipc"), "uts_ns": "", "cgroup": cg,
                                 "cni": False}
        # A hostNetwork pod keeps the node's UTS namespace: its hostname is the node's (as with the CRI).
        status = SandboxStatus(id=sid, pod_uid=sid, ready=False, cgroup_parent=cg, labels=dict(config.labels),
                               hostname=socket.gethostname() if config.host_network else config.hostname)
        if not config.host_network:
            # Known before anything is made, so one save covers a failure at any later step
            # (unmounting or CNI DEL of what was not made yet is harmless): 2 writes, not 4.
            extra.update(uts_ns=str(nsdir / "uts"), cni=True)
            status.netns_path = str(nsdir / "net")
        r = config.resources
        limits = cgroups.Limits(cpu_quota_us=r.cpu_quota_us, cpu_period_us=r.cpu_period_us,
                                memory_bytes=r.memory_limit_bytes, pids=r.pids_limit)

        def prepare() -> None:  # file work, in one thread hop
            nsdir.mkdir(parents=True, exist_ok=True)
            config.pod_dir.mkdir(parents=True, exist_ok=True)
            self._save(status, extra)  # first, so that a failure half-way can be cleaned up
            self.cgroups.create(cg, limits)

        try:
            await off_loop(prepare)
            kinds = (() if config.host_ipc else ("ipc",)) + (() if config.host_network else ("net", "uts"))
            try:
                if kinds:
                    await make_namespaces_async({k: nsdir / k for k in kinds}, config.hostname)
            except OSError as e:
                raise DriverError("SandboxError", f"cannot create the pod's namespaces: {e}") from e
            ip = self.node_ip
            if status.netns_path:
                ports = [HostPort(p.host_port, p.container_port, p.protocol.lower(), p.host_ip)
                         for p in config.ports if p.host_port]
                result = await self.cni.add(sid, status.netns_path, ports)
                ip = pod_ip(result)
            status.ip, status.ips = ip, [ip]
            if config.share_pid:
                def hold() -> None:  # recorded at once: a failure later still finds it to kill
                    extra["pid_holder"] = pid_holder.start()
                    self._save(status, extra)

                await off_loop(hold)
            await off_loop(lambda: self._pod_files(status, config, extra))
            return status
        except BaseException as e:
            with contextlib.suppress(Exception):
                await self.remove(sid)
            if isinstance(e, CniError):
                raise DriverError("NetworkError", f"pod network setup failed: {e}") from e
            if isinstance(e, OSError):
                raise DriverError("SandboxError", f"pod sandbox setup failed: {e}") from e
            raise

    def _pod_files(self, status: SandboxStatus, config: SandboxConfig, extra: dict[str, Any]) -> None:
        """/etc/hosts, resolv.conf and hostname of the pod, then the sandbox marked ready."""
        write_pod_files(status, config)
        (config.pod_dir / "hostname").write_text(status.hostname + "\n")
        self._save(status, extra)

    async def stop(self, sandbox_id: str) -> None:
        path = self.dir(sandbox_id) / "sandbox.json"
        data = read_json(path)
        if data is None:
            return
        if data.get("cni"):
            try:
                await self.cni.delete(sandbox_id)
            except CniError as e:
                log.warning("CNI DEL of %s: %s", sandbox_id, e)
            data["cni"] = False
        data["ready"] = False

        def unmount_and_save() -> None:  # off the loop, as in remove_container
            if data.get("pid_holder"):
                pid_holder.stop(data["pid_holder"])
            if data.get("netns_path"):
                unmount(data["netns_path"])
            write_json(path, data)

        await off_loop(unmount_and_save)

    async def remove(self, sandbox_id: str) -> None:
        sdir = self.dir(sandbox_id)
        data = read_json(sdir / "sandbox.json")
        if data is not None:
            await self.stop(sandbox_id)
            if data.get("cgroup"):
                await asyncio.to_thread(self.cgroups.remove, str(data["cgroup"]))
        def remove_files() -> None:  # off the loop, as in remove_container
            for ns in ("net", "ipc", "uts"):
                unmount(str(sdir / "ns" / ns))
            self.trash.discard(sdir)

        await off_loop(remove_files)

    async def list(self) -> list[SandboxStatus]:
        return recorded_sandboxes(self.root)
