"""The two systems of bench/swarm.py behind one interface: each runs the user's commands with its
own CLI (`docker ...` against the private engine, `bosun ...` against `bosun up`) and answers
the benchmark's questions (how many tasks run the current spec, was the killed task replaced,
did a stack converge) from its API, polled from this warm process as a user's watcher would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from _swarm import IMAGE, Engine, SwarmUnavailable
from bosun.api.registry import must_by_plural
from bosun.client.rest import ApiError, Client

DOCKER_CLI = "/usr/bin/docker"  # Debian's docker.io client, whatever else is on PATH
BOSUN_CLI = str(Path(sys.executable).with_name("bosun"))
PODS = must_by_plural("", "v1", "pods")
DEPLOYMENTS = must_by_plural("apps", "v1", "deployments")


class CommandFailed(RuntimeError):
    pass


async def run_cli(argv: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv[:4])}... exited {proc.returncode}: "
                            f"{(err or out).decode(errors='replace').strip()[:500]}")


class Side(Protocol):
    name: str
    image: list[str]  # the image and command of every task: `sleep 3600` from busybox

    async def cli(self, *args: str) -> None: ...

    async def running(self, service: str, namespace: str = "") -> int:
        """Tasks of the service's current spec that run (and are ready)."""
        ...

    async def kill_one(self, service: str) -> Any:
        """SIGKILL the main process of one running task; returns what replaced() needs."""
        ...

    async def replaced(self, service: str, token: Any, want: int) -> bool: ...


@dataclass
class Docker:
    engine: Engine
    name: str = "docker swarm"

    @property
    def image(self) -> list[str]:
        return [IMAGE, "sleep", "3600"]

    async def cli(self, *args: str) -> None:
        await run_cli([DOCKER_CLI, "-H", f"unix://{self.engine.sock}", *args])

    async def _tasks(self, service: str) -> list[dict[str, Any]]:
        filters = json.dumps({"service": [service], "desired-state": ["running"]})
        tasks: list[dict[str, Any]] = await self.engine.api("GET", f"/tasks?filters={filters}")
        return tasks

    async def running(self, service: str, namespace: str = "") -> int:
        """Running tasks whose spec is the service's current one (the task copies the
        service's ContainerSpec; the service's Spec.TaskTemplate has it as written)."""
        name = f"{namespace}_{service}" if namespace else service
        try:
            svc = await self.engine.api("GET", f"/services/{name}")
        except SwarmUnavailable as e:
            if ": 404 " in str(e):  # not created yet
                return 0
            raise
        env = sorted(svc["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env") or [])
        return sum(1 for t in await self._tasks(name)
                   if (t.get("Status") or {}).get("State") == "running"
                   and sorted((t.get("Spec") or {}).get("ContainerSpec", {}).get("Env") or []) == env)

    async def kill_one(self, service: str) -> Any:
        task = next(t for t in await self._tasks(service) if t["Status"]["State"] == "running")
        container = task["Status"]["ContainerStatus"]["ContainerID"]
        info = await self.engine.api("GET", f"/containers/{container}/json")
        os.kill(int(info["State"]["Pid"]), signal.SIGKILL)
        return task["ID"]

    async def replaced(self, service: str, token: Any, want: int) -> bool:
        tasks = [t for t in await self._tasks(service) if t["Status"]["State"] == "running"]
        return len(tasks) >= want and token not in {t["ID"] for t in tasks}


@dataclass
class Bosun:
    kubeconfig: str
    client: Client
    name: str = "bosun"
    namespace: str = "default"
    cli_path: str = BOSUN_CLI  # another checkout's `bosun` for a baseline in the same run

    @property
    def image(self) -> list[str]:
        return ["host", "busybox", "sleep", "3600"]

    async def cli(self, *args: str) -> None:
        await run_cli([self.cli_path, "--kubeconfig", self.kubeconfig, *args])

    async def running(self, service: str, namespace: str = "") -> int:
        try:
            d = await self.client.get(DEPLOYMENTS, service, namespace or self.namespace)
        except ApiError as e:
            if e.not_found:  # not created yet
                return 0
            raise
        st, meta = d.get("status") or {}, d["metadata"]
        if int(st.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
            return 0
        return min(int(st.get("updatedReplicas") or 0), int(st.get("readyReplicas") or 0))

    async def _pods(self, service: str) -> list[dict[str, Any]]:
        items, _ = await self.client.list_all(PODS, self.namespace, label_selector=f"bosun.io/service={service}")
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    async def kill_one(self, service: str) -> Any:
        pod = next(p for p in await self._pods(service) if _ready(p))
        uid = pod["metadata"]["uid"]
        pid = _process_in_pod(uid)
        os.kill(pid, signal.SIGKILL)
        return pod["metadata"]["name"], _restarts(pod)

    async def replaced(self, service: str, token: Any, want: int) -> bool:
        name, restarts = token
        pods = await self._pods(service)
        killed = next((p for p in pods if p["metadata"]["name"] == name), None)
        back = killed is None or (_restarts(killed) > restarts and _ready(killed))
        return back and sum(1 for p in pods if _ready(p)) >= want


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _restarts(pod: dict[str, Any]) -> int:
    return sum(int(c.get("restartCount") or 0) for c in (pod.get("status") or {}).get("containerStatuses") or [])


def _process_in_pod(uid: str) -> int:
    """The pid of the pod's container process (in a ``ctr`` cgroup below the pod's, which
    names its uid; the runtime's own helpers sit beside it, not in it)."""
    for cg in Path("/proc").glob("[0-9]*/cgroup"):
        try:
            text = cg.read_text()
        except OSError:
            continue
        if f"pod{uid}/" in text and any(line.endswith("/ctr") for line in text.splitlines()):
            return int(cg.parent.name)
    raise CommandFailed(f"no process of pod {uid} found")


async def bosun_pods_gone(client: Client, namespaces: tuple[str, ...], wait_s: float = 180) -> int:
    """Wait until no pod is left in ``namespaces`` (stopping `bosun up` leaves running pods
    running, as a kubelet does); returns how many were still there at the end."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        left = 0
        for ns in namespaces:
            items, _ = await client.list_all(PODS, ns)
            left += len(items)
        if not left or loop.time() > deadline:
            return left
        await asyncio.sleep(0.5)


def stack_file(path: Path, image: list[str], services: int = 5, replicas: int = 2) -> Path:
    """A stack of ``services`` services of ``replicas`` tasks each, all running ``image``."""
    body = {"version": "3.8", "services": {
        f"s{i}": {"image": image[0], "command": image[1:], "deploy": {"replicas": replicas}}
        for i in range(1, services + 1)}}
    path.write_text(json.dumps(body, indent=1))  # JSON is YAML: both CLIs read it
    return path


def cleanup_cli(argv: list[str]) -> None:
    subprocess.run(argv, capture_output=True, check=False, timeout=120)
