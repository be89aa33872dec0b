"""What LimitRanger and ResourceQuota admission cost a pod create, in process (the server's
write path without its HTTP round trip):

    .venv/bin/python bench/quota.py [--writes 300] [--rounds 3]

A real Storage on a SQLite store with its watch cache, which the plugins read their
LimitRanges and quotas from as in the server. Each round creates ``--writes`` pods in a
namespace with no LimitRange or quota (the baseline), then as many in one with a LimitRange
(defaults, min, max) and a ResourceQuota on pods, requests and limits, which every create is
charged to (a compare-and-swap of the quota's status in the store); baseline and quota
alternate, round after round.

Target: the LimitRange and the quota add at most 2 ms to a pod create's median time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _added_cost import InProcess, in_process, report
from _cli import results_header, run_async
from bosun.api.registry import must_by_plural
from bosun.api.storage import Storage

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 2.0
ACCOUNTS = must_by_plural("", "v1", "serviceaccounts")
PODS = must_by_plural("", "v1", "pods")
QUOTAS = must_by_plural("", "v1", "resourcequotas")
LIMITS = must_by_plural("", "v1", "limitranges")
HARD = {"pods": "100000", "requests.cpu": "10000", "limits.cpu": "20000", "requests.memory": "10000Gi"}


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}}


async def namespace(ip: InProcess, name: str) -> None:
    """A namespace with its default ServiceAccount, which pods are admitted against."""
    await ip.namespace(name)
    await ip.storage.create(ACCOUNTS, name, {"apiVersion": "v1", "kind": "ServiceAccount",
                                             "metadata": {"name": "default"}})


async def policies(storage: Storage, ns: str) -> None:
    """The LimitRange and the quota, its status as the controller would first write it; waited
    for until the plugins see both."""
    await storage.create(LIMITS, ns, {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l"},
                                      "spec": {"limits": [{"type": "Container", "default": {"cpu": "200m"},
                                                           "defaultRequest": {"memory": "64Mi"},
                                                           "min": {"cpu": "10m"}, "max": {"cpu": "1"}}]}})
    await storage.create(QUOTAS, ns, {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                                      "spec": {"hard": HARD}})

    def counted(q: dict[str, Any]) -> dict[str, Any]:
        q["status"] = {"hard": HARD, "used": dict.fromkeys(HARD, "0")}
        return q
    await storage.mutate(QUOTAS, ns, "q", counted, subresource="status")
    deadline = time.monotonic() + 10
    while not (storage.policies.list(QUOTAS, ns) and storage.policies.list(LIMITS, ns)):
        if time.monotonic() > deadline:
            raise RuntimeError("the plugins do not see the quota")
        await asyncio.sleep(0.01)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    async with in_process() as ip:
        for ns in ("plain", "quota"):
            await namespace(ip, ns)
        await policies(ip.storage, "quota")
        for ns in ("plain", "quota"):
            await ip.timed_creates(PODS, ns, pod, "warmup", 50)
        rounds: list[dict[str, float]] = []
        for r in range(args.rounds):
            row: dict[str, float] = {}
            for label, ns in (("baseline", "plain"), ("quota", "quota")):
                row[label] = statistics.median(await ip.timed_creates(PODS, ns, pod, f"r{r}", args.writes))
            rounds.append(row)
        quota = await ip.storage.get(QUOTAS, "quota", "q")
        want = 50 + args.rounds * args.writes
        if quota["status"]["used"]["pods"] != str(want):
            raise RuntimeError(f"the quota counts {quota['status']['used']['pods']} pods, not {want}")
        return {"rounds": rounds, "quota_used": quota["status"]["used"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    header = results_header(args, "in process, SQLite store; other work on the machine as it happened")
    result = run_async(measure(args))
    report("quota", result["rounds"], "quota", target_ms=TARGET_MS,
           what=f"{args.writes} pod creates per run, {args.rounds} rounds, "
                "baseline and LimitRange + ResourceQuota alternating",
           columns=("no policy ms/create", "limits+quota ms/create"), header=header, result=result,
           out=None if args.no_write else ROOT / "bench" / "results")


if __name__ == "__main__":
    main()
