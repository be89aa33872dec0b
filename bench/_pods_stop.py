"""`bench/pods.py --stop`: how long `bosun up` takes to stop N pods that ignore SIGTERM, and
how long a SIGKILLed `bosun up` takes to adopt them again after a restart.

One run: a fresh `bosun up` (oci runtime) gets N pods of `sleep` (PID 1 of its own PID
namespace, so SIGTERM does nothing: every pod needs its whole grace period, then SIGKILL)
with ``terminationGracePeriodSeconds`` GRACE. Then:

* adoption: SIGKILL of `bosun up`, started again on the same data dir; the time from the
  kill until the new process printed ``ready`` (its agent removed orphans and took up every
  pod's worker before that), and until the node is Ready again with every pod Running on
  the very container it had (same container id, same `sleep` process: adopted, not
  restarted);
* stop: SIGINT (Ctrl-C) to the new `bosun up`, and the time until it exited, with its exit
  code and what it left (processes, mounts under the data dir).

Target for the stop (issue 13): the longest grace period + 5 s. The adoption target is ours:
10 s for 100 pods (a node back within a lease period of 40 s, with time to spare).
"""

from __future__ import annotations

import asyncio
import calendar
import os
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _cli import text_table
from _pods_procs import leftovers, start_bosun_up
from bosun.api.registry import by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client

PODS = by_plural("", "v1", "pods")
NODES = by_plural("", "v1", "nodes")
ADOPT_TARGET_S = 10.0
SLACK_S = 5.0


def _sleep_pids(marker: str) -> set[int]:
    want = f"sleep\0{marker}\0".encode()
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() == want:
                    out.add(int(pid))
            except OSError:
                pass
    return out


def _mounts_under(path: Path) -> list[str]:
    root = os.path.realpath(path)
    return [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()
            if ln.split()[1].startswith(root + "/")]


async def _running(client: Client) -> dict[str, str]:
    """name -> container id of the pods Running."""
    pods = (await client.list(PODS, "default"))["items"]
    return {p["metadata"]["name"]: (p["status"].get("containerStatuses") or [{}])[0].get("containerID", "")
            for p in pods if (p.get("status") or {}).get("phase") == "Running"}


async def _node_ready_since(client: Client, name: str, since: float) -> bool:
    """Ready, with a heartbeat at or after ``since`` (wall clock, whole seconds as the API has them)."""
    try:
        node = await client.get(NODES, name)
    except ApiError:
        return False  # not registered yet
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            beat = calendar.timegm(time.strptime(c.get("lastHeartbeatTime", ""), "%Y-%m-%dT%H:%M:%SZ"))
            return beat >= int(since)
    return False


async def _create_pods(kubeconfig: str, node: str, n: int, grace: int, marker: str) -> dict[str, str]:
    client = Client.from_kubeconfig(kubeconfig)
    try:
        deadline = time.monotonic() + 120
        while not await _node_ready_since(client, node, 0):
            assert time.monotonic() < deadline, "node not Ready"
            await asyncio.sleep(0.2)
        limit = asyncio.Semaphore(20)

        async def create(i: int) -> None:
            async with limit:
                await client.create(PODS, {"metadata": {"name": f"stop-{i}"}, "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "containers": [{"name": "main", "image": "host", "command": ["sleep", marker]}]}}, "default")

        await asyncio.gather(*(create(i) for i in range(n)))
        while len(running := await _running(client)) < n:
            assert time.monotonic() < deadline, f"only {len(running)} of {n} pods Running"
            await asyncio.sleep(0.5)
        return running
    finally:
        await client.close()


async def _wait_adopted(kubeconfig: str, node: str, before: dict[str, str], pids: set[int], marker: str,
                        killed_wall: float, t0: float) -> float:
    client = Client.from_kubeconfig(kubeconfig)
    try:
        deadline = time.monotonic() + 120
        while True:
            if (await _node_ready_since(client, node, killed_wall) and await _running(client) == before
                    and _sleep_pids(marker) == pids):
                return time.perf_counter() - t0
            assert time.monotonic() < deadline, "pods not adopted within 120 s"
            await asyncio.sleep(0.1)
    finally:
        await client.close()


def one_run(i: int, n: int, grace: int) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="bosun-stopbench-"))
    node = f"stopbench-{os.getpid()}-{i}"
    marker = str(9_000_000 + os.getpid() * 10 + i)
    up = start_bosun_up(data_dir, node_name=node)
    result: dict[str, Any] = {"run": i + 1, "pods": n, "grace_s": grace}
    try:
        before = asyncio.run(_create_pods(up.kubeconfig, node, n, grace, marker))
        pids = _sleep_pids(marker)
        assert len(pids) == n, f"{len(pids)} sleep processes for {n} pods"
        t0, killed_wall = time.perf_counter(), time.time()
        up.proc.send_signal(signal.SIGKILL)
        up.proc.wait()
        up = start_bosun_up(data_dir, node_name=node, ports=up.ports)  # as a user restarts it
        result["restart_ready_s"] = round(time.perf_counter() - t0, 2)
        result["adopted_s"] = round(asyncio.run(_wait_adopted(up.kubeconfig, node, before, pids, marker,
                                                              killed_wall, t0)), 2)
    finally:
        t1 = time.perf_counter()
        code = up.stop(timeout=grace + 120)
        result["stop_s"] = round(time.perf_counter() - t1, 2)
        result["exit_code"] = code
        result["left_processes"] = len(_sleep_pids(marker)) + len(leftovers(data_dir))
        result["left_mounts"] = len(_mounts_under(data_dir))
        if not result["left_mounts"]:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(f"run {i + 1}: restart ready {result.get('restart_ready_s')} s, adopted {result.get('adopted_s')} s, "
          f"stop {result['stop_s']} s (exit {code}), left {result['left_processes']} processes "
          f"{result['left_mounts']} mounts", flush=True)
    return result


def stop_bench(runs: int, n: int, grace: int) -> dict[str, Any]:
    results = [one_run(i, n, grace) for i in range(runs)]
    stop = statistics.median(r["stop_s"] for r in results)
    adopt = statistics.median(r["adopted_s"] for r in results)
    target = grace + SLACK_S
    clean = all(r["exit_code"] == 0 and not r["left_processes"] and not r["left_mounts"] for r in results)
    return {"runs": results,
            "median": {"stop_s": stop, "adopted_s": adopt,
                       "restart_ready_s": statistics.median(r["restart_ready_s"] for r in results)},
            "verdict": {
                f"stop_{n}_pods_s": {"value": stop, "target": target, "met": stop <= target},
                f"sigkill_to_{n}_adopted_s": {"value": adopt, "target": ADOPT_TARGET_S, "met": adopt <= ADOPT_TARGET_S},
                "exit_0_and_nothing_left": {"value": clean, "target": True, "met": clean}}}


def print_stop(result: dict[str, Any]) -> None:
    rows = [[str(r["run"]), str(r["restart_ready_s"]), str(r["adopted_s"]), str(r["stop_s"]), str(r["exit_code"]),
             str(r["left_processes"]), str(r["left_mounts"])] for r in result["runs"]]
    m = result["median"]
    rows.append(["median", str(m["restart_ready_s"]), str(m["adopted_s"]), str(m["stop_s"]), "", "", ""])
    print(text_table(["run", "SIGKILL->ready s", "SIGKILL->adopted s", "stop (Ctrl-C) s", "exit", "left procs",
                      "left mounts"], rows))
    for name, v in result["verdict"].items():
        print(f"  {name}: {v['value']} (target {v['target']}) {'OK' if v['met'] else 'MISSED'}")
