"""The ``docker`` driver: pods through the node's own Docker Engine (``--runtime docker``).

For hosts that already run Docker: no crun needed, images pulled (and cached) by the engine.
The pod sandbox is a pause container (busybox ``sleep``, see docker_engine) made with no
network; Bosun's CNI then attaches its network namespace to the node bridge exactly as the
oci driver does (same podCIDR, same host-local leases, same bridge), so pod IPs are routed,
proxied and policed the same whichever driver a node runs. App containers join the pause
container's network, IPC and UTS namespaces (``network_mode=container:<pause>``) and get the
pod's /etc/hosts, resolv.conf and hostname bind-mounted, as the kubelet's dockershim did.

Everything is found again from the engine after an agent restart: containers carry the pod
labels of base.py plus the driver root's path (several agents may share one engine); a
sandbox's IP and files are kept in ``sandboxes/<pod uid>/sandbox.json`` as with oci.
Docker's logs are copied into the agent's CRI log files (docker_logs). The SDK is
synchronous: its calls run in a pool of threads of the driver's own, so 100 pods starting at
once do not queue behind the loop's default executor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors

from bosun.agent.cni import Cni, CniConfig, bridge_unused
from bosun.agent.runtime import oci_bundle as ob
from bosun.agent.runtime import spawn
from bosun.agent.runtime.base import (
    HOST_IMAGE,
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    ContainerConfig,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    DriverError,
    ImageError,
    ImageInfo,
    PodNetwork,
    PullPolicy,
    SandboxConfig,
    SandboxStatus,
    StartError,
)
from bosun.agent.runtime.docker_engine import (
    LABEL_IMAGE,
    LABEL_LOG_MAX,
    LABEL_LOG_PATH,
    LABEL_ROOT,
    LABEL_SANDBOX,
    Engine,
    api_message,
    connect,
    ensure_pause_image,
    status_from_inspect,
)
from bosun.agent.runtime.docker_events import DockerEvents
from bosun.agent.runtime.docker_exec import DockerAttachment, DockerExec, attach, start_exec
from bosun.agent.runtime.docker_logs import LogCopier
from bosun.agent.runtime.docker_sandbox import DockerSandboxes
from bosun.agent.runtime.docker_security import docker_security, holds_every_capability, pid_mode

log = logging.getLogger(__name__)
T = TypeVar("T")
POOL = 16
DOCKER_LOG_BYTES = 1 << 20  # the least size of Docker's own log file before it rotates
_LIST_STATES = {"running": ContainerState.RUNNING, "paused": ContainerState.RUNNING,
                "restarting": ContainerState.RUNNING, "exited": ContainerState.EXITED, "dead": ContainerState.EXITED}


class DockerDriver:
    name = "docker"

    def __init__(self, root: Path, node_ip: str, *, pod_cidr: str = "10.88.0.0/16", bridge: str = "bosun0",
                 network_name: str = "bosun", ipam_dir: str = "/var/lib/cni/networks",
                 base_url: str | None = None) -> None:
        self.root = root.absolute()
        self.node_ip = node_ip
        self.client = connect(base_url, POOL)  # one line and no driver when no engine answers
        self._pool = ThreadPoolExecutor(POOL, thread_name_prefix="docker")
        self.engine = Engine(self.client, self._pool)
        self.ipam_dir = ipam_dir
        self.sandboxes = DockerSandboxes(self.root, node_ip, self.engine, Cni(
            self.root / "cni", CniConfig(pod_cidr=pod_cidr, bridge=bridge, network_name=network_name,
                                         ipam_dir=ipam_dir, loopback=False)))
        self.logs = LogCopier(root / "logs")
        # The last inspect of each container (an exited one never changes again): a relist
        # of 100 pods inspects only what changed state since (see list_containers).
        self._seen: dict[str, ContainerStatus] = {}
        # The engine tells exits (see ContainerEvents): the agent relists only now and then.
        self.events = DockerEvents(self.client, self._filters(), lambda cid: self._seen.pop(cid, None))
        self._docker_root = Path("/var/lib/docker")
        self._full_privilege = holds_every_capability()  # see docker_security

    def enforces_security(self) -> bool:
        """See SecurityEnforcing: securityContext becomes Docker's create options (docker_security)."""
        return True

    def set_pod_network(self, network: PodNetwork) -> None:
        """See PodNetworkAware: pods get addresses on the node's podCIDR, as with oci."""
        c = self.cni.config
        self.sandboxes.cni = Cni(self.root / "cni", CniConfig(
            pod_cidr=network.pod_cidr, mtu=network.mtu, bridge=c.bridge, network_name=c.network_name,
            ipam_dir=self.ipam_dir, loopback=False))

    async def _call(self, fn: Callable[[], T]) -> T:
        return await self.engine.call(fn)

    @property
    def cni(self) -> Cni:
        return self.sandboxes.cni

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        for d in ("sandboxes", "cni"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        await self._call(lambda: ensure_pause_image(self.client))
        # json-file logs are <DockerRootDir>/containers/<id>/<id>-json.log (the engine's own
        # layout, as its inspect says): known without an inspect per container.
        self._docker_root = Path((await self._call(self.client.info))["DockerRootDir"])
        self.logs.start()
        await self.list_containers()  # adopted (each inspected, so followed): their logs go on where they stopped
        self.events.start()

    async def close(self) -> None:
        """Containers keep running (agent restarts); a node left with no pod at all also
        loses the bridge, as with oci, so that nothing is left behind."""
        self.events.close()
        await self.logs.close()
        if not await self.list_sandboxes() and not await self.list_containers() \
                and bridge_unused(self.cni.config.bridge):
            await spawn.run(["ip", "link", "del", self.cni.config.bridge], timeout=10)
        self._pool.shutdown(wait=False)
        self.client.close()

    def _filters(self, *labels: str) -> dict[str, Any]:
        return {"label": [f"{LABEL_ROOT}={self.root}", *labels]}

    # -- images ---------------------------------------------------------------------------------

    async def ensure_image(self, image: str, policy: PullPolicy) -> ImageInfo:
        if image in ("", HOST_IMAGE):
            raise ImageError("InvalidImageName", 'the docker runtime has no "host" image: name an image')
        data = None if policy == PullPolicy.ALWAYS else await self._inspect_image(image)
        if data is None:
            if policy == PullPolicy.NEVER:
                raise ImageError("ErrImageNeverPull",
                                 f'Container image "{image}" is not present with pull policy of Never')
            await self._pull(image)
            data = await self._inspect_image(image)
            if data is None:
                raise ImageError("ErrImagePull", f'failed to pull image "{image}": not found after the pull')
        cfg = data.get("Config") or {}
        env = [tuple(e.split("=", 1)) for e in cfg.get("Env") or [] if "=" in e]
        return ImageInfo(name=image, id=data["Id"], entrypoint=list(cfg.get("Entrypoint") or []),
                         cmd=list(cfg.get("Cmd") or []), env=[(k, v) for k, v in env],
                         working_dir=cfg.get("WorkingDir") or "", user=cfg.get("User") or "")

    async def _inspect_image(self, image: str) -> dict[str, Any] | None:
        def call() -> dict[str, Any] | None:
            try:
                data: dict[str, Any] = self.client.inspect_image(image)
                return data
            except docker.errors.ImageNotFound:
                return None
            except docker.errors.APIError as e:
                raise ImageError("InvalidImageName", f"invalid image name {image!r}: {api_message(e)}") from e

        return await self._call(call)

    async def _pull(self, image: str) -> None:
        repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")

        def call() -> None:
            try:
                self.client.pull(repo, tag=tag or None)
            except docker.errors.APIError as e:
                raise ImageError("ErrImagePull", f'failed to pull image "{image}": {api_message(e)}') from e

        await self._call(call)

    # -- sandboxes (docker_sandbox) -------------------------------------------------------------

    async def run_sandbox(self, config: SandboxConfig) -> SandboxStatus:
        return await self.sandboxes.run(config)

    async def stop_sandbox(self, sandbox_id: str) -> None:
        await self.sandboxes.stop(sandbox_id)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        await self.sandboxes.remove(sandbox_id)

    async def list_sandboxes(self) -> list[SandboxStatus]:
        return await self.sandboxes.list()

    # -- containers -----------------------------------------------------------------------------

    async def create_container(self, sandbox: SandboxStatus, config: ContainerConfig, image: ImageInfo) -> str:
        sdata = self.sandboxes.data(sandbox.id)
        if sdata is None or not sdata.get("ready") or not sdata.get("pause"):
            raise StartError(f"pod sandbox {sandbox.id} is not ready")
        args = ob.merge_command(config.command, config.args, image.entrypoint, image.cmd)
        if not args:
            raise StartError(f"no command specified for container {config.name!r} and the image has none")
        pause, sec, r = str(sdata["pause"]), config.security, config.resources
        binds = [f"{m.host_path}:{m.container_path}:{'ro' if m.read_only else 'rw'}" for m in config.mounts]
        for path, dest in ((sandbox.hosts_path, "/etc/hosts"), (sandbox.resolv_path, "/etc/resolv.conf")):
            if path:
                binds.append(f"{path}:{dest}:rw")
        labels = {**config.labels, LABEL_ROOT: str(self.root), LABEL_POD_UID: config.pod_uid,
                  LABEL_CONTAINER_NAME: config.name, LABEL_ATTEMPT: str(config.attempt),
                  LABEL_LOG_PATH: str(config.log_path), LABEL_IMAGE: config.image}
        try:
            secure = docker_security(sec, image.user, full_privilege=self._full_privilege)
        except ValueError as e:
            raise StartError(str(e)) from e
        # Docker's json-file log is only the copier's source (docker_logs): bounded too, in
        # two files, so that a rotation between two of the copier's passes loses nothing.
        log_opts = {"max-size": str(max(config.log_max_bytes, DOCKER_LOG_BYTES)), "max-file": "2"}
        labels[LABEL_LOG_MAX] = f"{config.log_max_bytes}:{config.log_max_files}"

        def create() -> str:
            host = self.client.create_host_config(
                network_mode=f"container:{pause}", ipc_mode="host" if sdata.get("host_ipc") else f"container:{pause}",
                binds=binds, mem_limit=r.memory_limit_bytes or None,
                cpu_quota=r.cpu_quota_us or None, cpu_period=r.cpu_period_us if r.cpu_quota_us else None,
                cpu_shares=r.cpu_shares, pids_limit=r.pids_limit or None,
                pid_mode=pid_mode(sec, pause if sdata.get("share_pid") else ""),
                log_config={"type": "json-file", "config": log_opts}, **secure.host)
            host.update(secure.raw_host)
            cid: str = self.client.create_container(
                image.id, entrypoint=args[:1], command=args[1:],
                environment=ob.merge_env(image.env, config.env, sandbox.hostname),
                working_dir=config.working_dir or image.working_dir or None, user=secure.user, labels=labels,
                # StdinOnce (detach=False with stdin): the engine closes the container's stdin when an
                # attached client closes its own, as the oci driver's shim does; else an attached
                # `kubectl attach -i` of piped input would never see the command end.
                tty=config.tty, stdin_open=config.stdin, detach=not config.stdin, host_config=host,
                name=f"bosun-{config.pod_uid[:8]}-{config.name}-{config.attempt}-{os.urandom(3).hex()}")["Id"]
            return cid

        try:
            return await self._call(create)
        except docker.errors.APIError as e:
            raise StartError(f"cannot create container {config.name!r}: {api_message(e)}") from e

    async def start_container(self, container_id: str) -> None:
        def start() -> None:
            self.client.start(container_id)

        try:
            await self._call(start)
        except docker.errors.APIError as e:
            raise StartError(api_message(e)) from e
        finally:
            await self.container_status(container_id)  # its log followed from now on

    async def _follow(self, st: ContainerStatus) -> None:
        if st.log_path is not None and st.pod_uid:
            max_bytes, _, max_files = st.labels.get(LABEL_LOG_MAX, "0:5").partition(":")
            self.logs.follow(st.id, str(self._docker_root / "containers" / st.id / f"{st.id}-json.log"),
                             st.log_path, int(max_bytes or 0), int(max_files or 5))

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        def stop() -> None:
            try:
                self.client.stop(container_id, timeout=max(0, round(grace_seconds)))
            except docker.errors.NotFound:
                pass

        await self._call(stop)

    async def remove_container(self, container_id: str) -> None:
        await self.logs.flush(container_id)
        await self.engine.remove(container_id)
        self.logs.forget(container_id)
        self._seen.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        seen = self._seen.get(container_id)
        if seen is not None and seen.state == ContainerState.EXITED:
            return seen

        def inspect() -> dict[str, Any] | None:
            try:
                data: dict[str, Any] = self.client.inspect_container(container_id)
                return data
            except docker.errors.NotFound:
                return None

        data = await self._call(inspect)
        if data is None or (data["Config"].get("Labels") or {}).get(LABEL_ROOT) != str(self.root):
            return None
        st = status_from_inspect(data)
        if st.state != ContainerState.CREATED:
            await self._follow(st)
        if st.state == ContainerState.EXITED:
            # Docker has written all of the output once it says exited: copied before the agent
            # hears of the exit, so that `kubectl logs` of an ended container has its last lines.
            await self.logs.flush(container_id)
        self._seen[container_id] = st
        return st

    async def changed(self) -> set[str]:
        """See ContainerEvents: pods whose containers died, were OOM-killed or removed."""
        return await self.events.changed()

    async def list_containers(self, pod_uid: str | None = None) -> list[ContainerStatus]:
        """One list call; a container is inspected again only when the list's state differs
        from the last inspect's (100 pods' workers relisting would otherwise inspect every
        running container every time)."""
        filters = self._filters(*([f"{LABEL_POD_UID}={pod_uid}"] if pod_uid else []))
        summaries = await self._call(lambda: self.client.containers(all=True, filters=filters))
        ids = [s["Id"] for s in summaries if not (s.get("Labels") or {}).get(LABEL_SANDBOX)]
        states = {s["Id"]: s.get("State") for s in summaries}

        async def status(cid: str) -> ContainerStatus | None:
            seen = self._seen.get(cid)
            if seen is not None and _LIST_STATES.get(str(states[cid])) == seen.state:
                return seen
            return await self.container_status(cid)

        found = await asyncio.gather(*(status(cid) for cid in ids))
        return [st for st in found if st is not None]

    # -- exec and stats -------------------------------------------------------------------------

    async def exec(self, container_id: str, command: list[str], *, tty: bool = False,
                   stdin: bool = False) -> DockerExec:
        st = await self.container_status(container_id)
        if st is None or st.state != ContainerState.RUNNING:
            raise DriverError("NotRunning", f"container {container_id} is not running")
        if not command:
            raise DriverError("ExecError", "no command given")
        return await start_exec(self.client, self._pool, container_id, command, tty=tty, stdin=stdin)

    async def attach(self, container_id: str) -> DockerAttachment | None:
        """See ContainerAttacher: the engine keeps an interactive container's stdio."""
        return await attach(self.client, self._pool, container_id)

    async def stats(self, container_id: str) -> ContainerStats | None:
        def call() -> dict[str, Any] | None:
            try:
                data: dict[str, Any] = self.client.stats(container_id, stream=False, one_shot=True)
                return data
            except docker.errors.APIError:
                return None

        data = await self._call(call)
        if not data or not (data.get("memory_stats") or {}).get("usage"):  # not running
            return None
        mem = data.get("memory_stats") or {}
        inactive = (mem.get("stats") or {}).get("total_inactive_file", (mem.get("stats") or {}).get("inactive_file", 0))
        cpu = ((data.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0
        return ContainerStats(container_id=container_id, timestamp=time.time(), cpu_usage_ns=int(cpu),
                              memory_working_set_bytes=max(0, int(mem.get("usage") or 0) - int(inactive or 0)))


__all__ = ["DockerDriver"]
