"""What the CEL extension libraries and the cost budget add to one evaluation, in CPU time:

    .venv/bin/python bench/cel_overhead.py --baseline /work/main [--runs 3]

Runs each measurement in a child process importing either this tree or ``--baseline`` (a
checkout without the change), alternating baseline and change ``--runs`` times; CPU time
(``process_time``, best of 15 repeats) so that other work on a shared machine counts less.

- ``policies``: the 10 ValidatingAdmissionPolicies of ``admission_policy.py`` (a variable, a
  match condition and a validation each, the validation a comprehension: metered) evaluated
  on one Deployment: microseconds per write.
- ``crd``: a CRD version's validation of one object with 4 rules (two metered, one calling
  ``quantity()`` on the branch only where the baseline has no such function, so the baseline
  runs ``size()`` instead): microseconds per object.

Target: at most 10 microseconds added per evaluated expression (300 for ``policies``' 30,
40 for ``crd``'s 4).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cli import results_header, text_table, write_result

ROOT = Path(__file__).resolve().parent.parent
TARGET_US = {"policies": 300.0, "crd": 40.0}

CHILD = r'''
import json, sys, time, timeit
sys.path[:0] = [TREE + "/src", TREE + "/bench"]
from admission_policy import deployment, policy
from bosun.api.admission import policy as P
from bosun.api.crd import cel
from bosun.api.crd.cel import Environment
from bosun.api.crd.version import CustomVersion
from bosun.api.registry import must_by_plural

assert P.__file__.startswith(TREE), P.__file__
obj = deployment("x")
specs = [policy(i)["spec"] for i in range(10)]

def policies():
    env = Environment({"object": obj, "oldObject": None, "request": {}, "namespaceObject": None},
                      {"params": None, "variables": {}})
    for s in specs:
        assert P._evaluate(s, env) is None

memory = "quantity(self.memory).isLessThan(quantity('1Gi'))" if LIBRARIES else "size(self.memory) < 10"
schema = {"type": "object", "properties": {"spec": {
    "type": "object", "x-kubernetes-validations": [
        {"rule": "self.replicas <= self.maxReplicas"}, {"rule": memory},
        {"rule": "self.names.all(n, n.startsWith('a'))"}, {"rule": "has(self.names)"}],
    "properties": {"replicas": {"type": "integer"}, "maxReplicas": {"type": "integer"},
                   "memory": {"type": "string", "maxLength": 16},
                   "names": {"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 32}}}}}}
strategy = CustomVersion(schema, {})
res = must_by_plural("apps", "v1", "deployments")
item = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x", "namespace": "ns"},
        "spec": {"replicas": 1, "maxReplicas": 3, "memory": "512Mi", "names": ["alpha", "abc", "avocado"]}}

def crd():
    assert strategy.validate(res, item) == []

out = {}
for name, fn in (("policies", policies), ("crd", crd)):
    fn()
    out[name] = min(timeit.repeat(fn, number=200, repeat=15, timer=time.process_time)) / 200 * 1e6
print(json.dumps(out))
'''


def child(tree: Path, libraries: bool) -> dict[str, float]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # leave the other tree as it is
    code = f"TREE = {str(tree)!r}\nLIBRARIES = {libraries!r}\n" + CHILD
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False,
                          timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="a checkout without the change (e.g. /work/main)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    header = results_header(args, "CPU time in child processes; other work on the machine as it happened")
    runs: list[dict[str, Any]] = []
    for _ in range(args.runs):
        runs.append({"baseline": child(Path(args.baseline).resolve(), False), "change": child(ROOT, True)})
    print(f"loop speed {header['machine']['loop_mops']} Mops/s; CPU us per evaluation, best of 15 repeats, "
          f"baseline {args.baseline} and this tree alternating\n")
    rows, verdicts = [], {}
    for name, target in TARGET_US.items():
        for i, r in enumerate(runs):
            rows.append([name, str(i + 1), f"{r['baseline'][name]:.0f}", f"{r['change'][name]:.0f}",
                         f"{r['change'][name] - r['baseline'][name]:.0f}"])
        added = statistics.median(r["change"][name] - r["baseline"][name] for r in runs)
        verdicts[name] = {"added_us": added, "target_us": target, "verdict": "met" if added <= target else "MISSED"}
        rows.append([name, "median", f"{statistics.median(r['baseline'][name] for r in runs):.0f}",
                     f"{statistics.median(r['change'][name] for r in runs):.0f}",
                     f"{added:.0f} (target <= {target:.0f}: {verdicts[name]['verdict']})"])
    print(text_table(["what", "run", "baseline us", "change us", "added us"], rows))
    if not args.no_write:
        write_result({**header, "runs": runs, "verdicts": verdicts},
                     ROOT / "bench" / "results" / f"cel_overhead-{time.strftime('%Y%m%d-%H%M%S')}.json")


if __name__ == "__main__":
    main()
