"""The pods workload on Bosun's docker driver (`bosun up --runtime docker`), for the side by
side with the oci driver and Docker Swarm in one run of bench/pods.py.

The engine is the Swarm side's private dockerd (bench/_swarm.py: own data and exec roots and
socket, the host's rules and links restored at the end), with no swarm: `bosun up` reaches it
through DOCKER_HOST. The image is the Swarm side's busybox (imported from Debian's
busybox-static), so both Docker-based columns run the same `sleep 3600`; the oci column runs
the `host` image, the cheapest each driver has. Pods get their IPs from Bosun's bridge on
either driver, so the network work per pod is the same.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import NAMESPACES
from _pods_phase import delete_pods, run_pods, wait_node_ready
from _pods_procs import start_bosun_up
from _swarm import IMAGE, SwarmUnavailable, busybox_rootfs_tar, start_engine, stop_engine
from bosun.client.rest import Client

LABEL_ROOT = "io.bosun.docker.root"


async def _bosun_containers(engine: Any) -> int:
    found = await engine.api("GET", '/containers/json?all=1&filters={"label":["' + LABEL_ROOT + '"]}')
    return len(found)


async def _steps(kubeconfig: Path, node: str, sizes: list[int], engine: Any) -> list[dict[str, Any]]:
    client = Client.from_kubeconfig(kubeconfig)
    steps: list[dict[str, Any]] = []
    try:
        await wait_node_ready(client, node)
        await asyncio.sleep(3)
        for n in sizes:
            ns = f"podbench-docker-{n}"
            step = await run_pods(client, ns, n, "plain", image=IMAGE)
            step["variant"] = "plain"
            step["delete_s"] = await delete_pods(client, ns)
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 120:
                if not await _bosun_containers(engine):
                    break
                await asyncio.sleep(0.2)
            step["containers_gone_s"] = round(time.perf_counter() - t0, 3)
            await client.delete(NAMESPACES, ns)
            steps.append(step)
            print(step_line(step), flush=True)
    finally:
        await client.close()
    return steps


def step_line(s: dict[str, Any]) -> str:
    r = s["create_to_running"]
    return (f"{s['pods']:>5} docker running {s['running']:>3}/{s['pods']:<3} all Running "
            f"{s['all_running_s'] or '-':>7} s  running p50 {r['p50_ms']:>7} p99 {r['p99_ms']:>7} ms  "
            f"delete {s['delete_s']} s")


async def run_docker_driver(sizes: list[int]) -> dict[str, Any]:
    """The whole docker-driver side; never raises for an engine that cannot run (``skipped``)."""
    try:
        engine = await start_engine()
    except SwarmUnavailable as e:
        return {"skipped": str(e)}
    result: dict[str, Any] = {}
    data_dir = Path(tempfile.mkdtemp(prefix="bosun-podbench-docker-"))
    try:
        repo, tag = IMAGE.rsplit(":", 1)
        await engine.api("POST", f"/images/create?fromSrc=-&repo={repo}&tag={tag}", data=busybox_rootfs_tar())
        result["engine_version"] = (await engine.api("GET", "/version")).get("Version")
        env = {**os.environ, "DOCKER_HOST": f"unix://{engine.sock}"}
        node = f"podbench-docker-{os.getpid()}"
        up = await asyncio.to_thread(start_bosun_up, data_dir, node, "docker", env=env)
        try:
            result["steps"] = await _steps(up.kubeconfig, node, sizes, engine)
        finally:
            result["bosun_up_exit"] = await asyncio.to_thread(up.stop)
            result["containers_left"] = await _bosun_containers(engine)
    except (SwarmUnavailable, OSError, RuntimeError, TimeoutError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        result["cleanup"] = await stop_engine(engine)
        shutil.rmtree(data_dir, ignore_errors=True)
    return result
