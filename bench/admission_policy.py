"""What ValidatingAdmissionPolicies cost a write, in process (the server's write path without
its HTTP round trip):

    .venv/bin/python bench/admission_policy.py [--writes 300] [--policies 10] [--rounds 3]

A real Storage on a SQLite store with its watch cache, the policies kept from that cache as
the server keeps them. Each round creates ``--writes`` Deployments with no policy (the
baseline), then again with ``--policies`` policies and bindings that all select the writes,
each with a variable, a match condition and a validation that passes (so every expression is
evaluated and every write is stored); baseline and policies alternate, round after round.

Target: ``--policies`` 10 matching policies add at most 2 ms to a write's median time.
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

from _added_cost import in_process, report
from _cli import results_header, run_async
from bosun.api.registry import must_by_plural
from bosun.api.storage import Storage

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 2.0
DEPLOYMENTS = must_by_plural("apps", "v1", "deployments")
POLICIES = must_by_plural("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies")
BINDINGS = must_by_plural("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings")
NS = "bench"


def deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {
                                      "limits": {"cpu": "100m", "memory": "64Mi"}}}]}}}}


def policy(i: int) -> dict[str, Any]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": f"p{i}"},
            "spec": {"matchConstraints": {"resourceRules": [{
                "apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["deployments"]}]},
                "variables": [{"name": "containers", "expression": "object.spec.template.spec.containers"}],
                "matchConditions": [{"name": "labelled", "expression": "has(object.metadata.labels)"}],
                "validations": [{"expression": f"object.spec.replicas <= {100 + i} && "
                                               "variables.containers.all(c, has(c.resources.limits))",
                                 "message": "too many replicas or no limits"}]}}


def binding(i: int) -> dict[str, Any]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": f"b{i}"}, "spec": {"policyName": f"p{i}", "validationActions": ["Deny"]}}


async def set_policies(storage: Storage, n: int) -> None:
    """``n`` policies and bindings (none when 0), waited for until the plugin sees them."""
    for res in (BINDINGS, POLICIES):
        items, _, _ = await storage.list(res, None)
        for obj in items:
            await storage.delete(res, None, obj["metadata"]["name"], options={})
    for i in range(n):
        await storage.create(POLICIES, None, policy(i))
        await storage.create(BINDINGS, None, binding(i))
    deadline = time.monotonic() + 10
    while len(storage.policies.pairs()) != n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the plugin sees {len(storage.policies.pairs())} policies, not {n}")
        await asyncio.sleep(0.01)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    async with in_process() as ip:
        await ip.namespace(NS)
        await ip.timed_creates(DEPLOYMENTS, NS, deployment, "warmup", 50)
        rounds: list[dict[str, float]] = []
        for r in range(args.rounds):
            row: dict[str, float] = {}
            for label, n in (("baseline", 0), ("policies", args.policies)):
                await set_policies(ip.storage, n)
                row[label] = statistics.median(await ip.timed_creates(DEPLOYMENTS, NS, deployment,
                                                                      f"{label}-{r}", args.writes))
            rounds.append(row)
        return {"rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--policies", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    header = results_header(args, "in process, SQLite store; other work on the machine as it happened")
    result = run_async(measure(args))
    report("admission_policy", result["rounds"], "policies", target_ms=TARGET_MS,
           what=f"{args.writes} Deployment creates per run, {args.rounds} rounds, "
                f"baseline and {args.policies} matching policies alternating",
           columns=("no policy ms/write", f"{args.policies} policies ms/write"), header=header, result=result,
           out=None if args.no_write else ROOT / "bench" / "results")


if __name__ == "__main__":
    main()
