"""Pod sandboxes of the docker driver: a pause container per pod that owns its network, IPC
and UTS namespaces, attached by Bosun's CNI to the node bridge (as the oci driver's
sandboxes are), with the pod's /etc/hosts and resolv.conf written beside it; recorded in
``sandboxes/<pod uid>/sandbox.json`` (IP, pause container) for a restarted agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import docker.errors

from bosun.agent.cni import Cni, CniError, HostPort, pod_ip
from bosun.agent.runtime.base import LABEL_POD_UID, DriverError, SandboxConfig, SandboxStatus
from bosun.agent.runtime.disk_state import read_json, recorded_sandboxes, sandbox_from, write_pod_files
from bosun.agent.runtime.docker_engine import LABEL_ROOT, LABEL_SANDBOX, PAUSE_IMAGE, Engine, api_message

log = logging.getLogger(__name__)


class DockerSandboxes:
    def __init__(self, root: Path, node_ip: str, engine: Engine, cni: Cni) -> None:
        self.root, self.node_ip, self.engine = root, node_ip, engine
        self.cni = cni  # replaced once the node's podCIDR is known (DockerDriver.set_pod_network)

    def data(self, sandbox_id: str) -> dict[str, Any] | None:
        return read_json(self.dir(sandbox_id) / "sandbox.json")

    def dir(self, sid: str) -> Path:
        return self.root / "sandboxes" / sid

    def _save(self, st: SandboxStatus, pause: str, config: SandboxConfig) -> None:
        data = asdict(st)
        data["hosts_path"] = str(st.hosts_path) if st.hosts_path else None
        data["resolv_path"] = str(st.resolv_path) if st.resolv_path else None
        data["pause"], data["host_ipc"], data["share_pid"] = pause, config.host_ipc, config.share_pid
        path = self.dir(st.id) / "sandbox.json"
        tmp = path.with_name(".sandbox.json.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    async def run(self, config: SandboxConfig) -> SandboxStatus:
        sid = config.pod_uid
        existing = read_json(self.dir(sid) / "sandbox.json")
        if existing and existing.get("ready"):
            return sandbox_from(existing)
        if existing:
            await self.remove(sid)
        self.dir(sid).mkdir(parents=True, exist_ok=True)
        config.pod_dir.mkdir(parents=True, exist_ok=True)
        status = SandboxStatus(id=sid, pod_uid=sid, ready=False, labels=dict(config.labels),
                               hostname=config.hostname)
        labels = {**config.labels, LABEL_ROOT: str(self.root), LABEL_SANDBOX: "1", LABEL_POD_UID: sid}

        def create() -> str:
            host = self.engine.client.create_host_config(
                network_mode="host" if config.host_network else "none",
                ipc_mode="host" if config.host_ipc else "shareable", auto_remove=False)
            pause: str = self.engine.client.create_container(
                PAUSE_IMAGE, labels=labels, host_config=host, name=f"bosun-pause-{sid}",
                hostname=None if config.host_network else config.hostname)["Id"]
            self._save(status, pause, config)  # first, so that a failure half-way can be cleaned up
            self.engine.client.start(pause)
            return pause

        try:
            pause = await self.engine.call(create)
            ip = self.node_ip
            if not config.host_network:
                pid = (await self.engine.call(lambda: self.engine.client.inspect_container(pause)))["State"]["Pid"]
                status.netns_path = f"/proc/{pid}/ns/net"
                ports = [HostPort(p.host_port, p.container_port, p.protocol.lower(), p.host_ip)
                         for p in config.ports if p.host_port]
                ip = pod_ip(await self.cni.add(sid, status.netns_path, ports))
            else:
                status.hostname = os.uname().nodename
            status.ip, status.ips = ip, [ip]
            write_pod_files(status, config)
            self._save(status, pause, config)
            return status
        except BaseException as e:
            await asyncio.shield(self.remove(sid))
            if isinstance(e, CniError):
                raise DriverError("NetworkError", f"pod network setup failed: {e}") from e
            if isinstance(e, docker.errors.APIError):
                raise DriverError("SandboxError", f"pod sandbox setup failed: {api_message(e)}") from e
            raise

    async def stop(self, sandbox_id: str) -> None:
        path = self.dir(sandbox_id) / "sandbox.json"
        data = read_json(path)
        if data is None:
            return
        if data.get("netns_path"):
            try:
                await self.cni.delete(sandbox_id)
            except CniError as e:
                log.warning("CNI DEL of %s: %s", sandbox_id, e)
        if data.get("pause"):
            await self.engine.remove(str(data["pause"]))
        data.update(ready=False, pause="", netns_path=None)
        path.write_text(json.dumps(data))

    async def remove(self, sandbox_id: str) -> None:
        await self.stop(sandbox_id)
        await asyncio.to_thread(shutil.rmtree, self.dir(sandbox_id), True)

    async def list(self) -> list[SandboxStatus]:
        return recorded_sandboxes(self.root)
