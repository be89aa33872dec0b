"""What API Priority and Fairness adds to a request:

    .venv/bin/python bench/apf.py [--rounds 5] [--requests 1500] [--passes 20] [--runs 3] [--clients 20]
                                  [--pods 1500]

1. In process, the exact code the middleware runs per request (classify by the upstream
   FlowSchemas, take and give back a seat, the two response headers), on real aiohttp
   requests for three users (system:masters: exempt; a node: ``system``; a plain user:
   ``global-default``) over creates, gets and lists in 50 namespaces, against the same loop
   without it (decoding the request, which authorization does anyway). Rounds alternate.
   Target: at most 0.05 ms added per request.
2. A whole `bosun server` (one API process): pod creates by ``--clients`` clients of a
   non-admin user (so a Limited level, ``global-default``), server CPU per create with
   ``--enable-priority-and-fairness=false`` and with it on, alternating, ``--runs`` each.
   Target: at most 5% more CPU per create (the median of the runs' differences; on a
   shared machine this figure is noisier than part 1's).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from _cli import results_header, run_async, text_table, write_result
from _common import CpuMeter, close_clients, open_clients
from _procs import remove_tree, start_server
from _workers import _creates
from bosun.api.apf.bootstrap import (
    mandatory_flow_schemas,
    mandatory_priority_levels,
    suggested_flow_schemas,
    suggested_priority_levels,
)
from bosun.api.apf.dispatcher import Dispatcher
from bosun.api.apf.gate import FLOW, Gate, is_watch
from bosun.api.catalog import BUILTIN
from bosun.api.registry import must_by_plural
from bosun.api.target import DECODED, decoded
from bosun.security.identity import ADMIN, authenticated, node_user
from bosun.security.tokens import create_user_token

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 0.05
TARGET_PCT = 5.0
BINDINGS = must_by_plural("rbac.authorization.k8s.io", "v1", "clusterrolebindings")


def _with_uids(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for i, o in enumerate(objs):
        o["metadata"]["uid"] = f"uid-{i}"
    return objs


class _Counts:
    """What the width estimate reads of a server's watch cache: 1,500 pods, 5 watches of them."""

    def objects(self, group_plural: str) -> int:
        return 1500 if group_plural == "pods" else 0

    def watches(self, group_plural: str) -> int:
        return 5 if group_plural == "pods" else 0


def _requests(n: int) -> list[tuple[Any, web.Request, web.Response]]:
    users = [ADMIN, node_user("n1"), authenticated("alice")]
    shapes = [("POST", "/api/v1/namespaces/ns{}/pods"), ("GET", "/api/v1/namespaces/ns{}/pods/p1"),
              ("GET", "/api/v1/namespaces/ns{}/pods")]
    out = []
    for i in range(n):
        method, path = shapes[i % 3]
        req = make_mocked_request(method, path.format(i % 50))
        out.append((users[(i // 3) % 3], req, web.Response()))
    return out


def _loop_without(reqs: list[tuple[Any, web.Request, web.Response]]) -> float:
    t0 = time.process_time()
    for _user, req, _resp in reqs:
        decoded(req, BUILTIN)
    return time.process_time() - t0


async def _loop_with(gate: Gate, reqs: list[tuple[Any, web.Request, web.Response]]) -> float:
    dispatcher = gate.dispatcher
    t0 = time.process_time()
    for user, req, resp in reqs:
        decoded(req, BUILTIN)
        flow = gate.flow(req, user)
        assert flow is not None
        if not dispatcher.admit_now(flow):
            await dispatcher.admit(flow)
        is_watch(req, decoded(req, BUILTIN))
        await gate.on_prepare(req, resp)
        dispatcher.done(flow)
    return time.process_time() - t0


def _reset(reqs: list[tuple[Any, web.Request, web.Response]]) -> None:
    """Forget what a loop kept on the requests (their decoding, their flow)."""
    for _user, req, _resp in reqs:
        req.pop(DECODED, None)
        req.pop(FLOW, None)


async def in_process(rounds: int, n: int, passes: int) -> list[dict[str, float]]:
    dispatcher = Dispatcher(600)
    dispatcher.configure(_with_uids([*mandatory_flow_schemas(), *suggested_flow_schemas()]),
                         _with_uids([*mandatory_priority_levels(), *suggested_priority_levels()]))
    gate = Gate(dispatcher, BUILTIN, _Counts())
    reqs = _requests(n)  # aiohttp's mocked requests are slow to make: made once, reused
    _loop_without(reqs)  # warm up (first decodings, the classifier's memory), not counted
    _reset(reqs)
    await _loop_with(gate, reqs)
    out = []
    for r in range(rounds):
        base = with_apf = 0.0
        for _ in range(passes):
            _reset(reqs)
            base += _loop_without(reqs)
            _reset(reqs)
            with_apf += await _loop_with(gate, reqs)
        total = n * passes
        out.append({"baseline": base * 1000 / total, "apf": with_apf * 1000 / total})
        print(f"in process, round {r + 1}/{rounds}: {out[-1]}", file=sys.stderr, flush=True)
    return out


async def _server_run(tmp: Path, enabled: bool, clients: int, pods: int, index: int) -> dict[str, Any]:
    data_dir = tmp / f"apf-{'on' if enabled else 'off'}-{index}"
    server = start_server(data_dir, "", extra=("--enable-priority-and-fairness", str(enabled).lower()))
    try:
        token = create_user_token(data_dir, "bench-user")
        conns = await open_clients(server, clients)
        try:
            await conns[0].create(BINDINGS, {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "bench-user"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "User", "name": "bench-user", "apiGroup": "rbac.authorization.k8s.io"}]})
            for c in conns:
                c.set_token(token)
            return await _creates(conns, CpuMeter(server), f"bench-{index}", pods)
        finally:
            await close_clients(conns)
    finally:
        server.stop()
        remove_tree(data_dir)


async def whole_server(runs: int, clients: int, pods: int) -> list[dict[str, float]]:
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-apf-") as tmp:
        for r in range(runs):
            row: dict[str, float] = {}
            for enabled in (False, True):
                print(f"server, APF {'on' if enabled else 'off'}, run {r + 1}/{runs} ...", file=sys.stderr, flush=True)
                got = await _server_run(Path(tmp), enabled, clients, pods, r)
                row["apf" if enabled else "baseline"] = got["server_cpu_ms_per_op"]
                row[("apf" if enabled else "baseline") + "_ops_per_s"] = got["ops_per_s"]
            out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="in-process rounds (baseline and APF alternate)")
    ap.add_argument("--requests", type=int, default=1500, help="distinct requests in the in-process loops")
    ap.add_argument("--passes", type=int, default=20, help="loops over them per round")
    ap.add_argument("--runs", type=int, default=3, help="whole-server runs with APF off and on (0: skip)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--pods", type=int, default=1500)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    header = results_header(args, "in-process loops, then a bosun server and this load generator on one box")
    print(f"loop speed {header['machine']['loop_mops']} Mops/s (a 10^6-step Python loop, best of 3)\n")
    inproc = run_async(in_process(args.rounds, args.requests, args.passes))
    added = [r["apf"] - r["baseline"] for r in inproc]
    med_added = statistics.median(added)
    verdict = "met" if med_added <= TARGET_MS else "MISSED"
    rows = [[str(i + 1), f"{r['baseline'] * 1000:.2f}", f"{r['apf'] * 1000:.2f}", f"{a * 1000:.2f}"]
            for i, (r, a) in enumerate(zip(inproc, added, strict=True))]
    rows.append(["median", f"{statistics.median(r['baseline'] for r in inproc) * 1000:.2f}",
                 f"{statistics.median(r['apf'] for r in inproc) * 1000:.2f}",
                 f"{med_added * 1000:.2f} (target <= {TARGET_MS * 1000:.0f}: {verdict})"])
    print("1. in process, CPU us per request")
    print(text_table(["round", "baseline us", "with APF us", "added us"], rows))
    result: dict[str, Any] = {**header, "in_process": {"rounds_ms": inproc, "median_added_ms": med_added,
                                                       "target_added_ms": TARGET_MS, "verdict": verdict}}
    if args.runs:
        server = run_async(whole_server(args.runs, args.clients, args.pods))
        pct = [(r["apf"] - r["baseline"]) * 100 / r["baseline"] for r in server]
        med_pct = statistics.median(pct)
        sverdict = "met" if med_pct <= TARGET_PCT else "MISSED"
        rows = [[str(i + 1), f"{r['baseline']:.3f}", f"{r['apf']:.3f}", f"{p:+.1f}",
                 f"{r['baseline_ops_per_s']:.0f}", f"{r['apf_ops_per_s']:.0f}"]
                for i, (r, p) in enumerate(zip(server, pct, strict=True))]
        rows.append(["median", f"{statistics.median(r['baseline'] for r in server):.3f}",
                     f"{statistics.median(r['apf'] for r in server):.3f}",
                     f"{med_pct:+.1f} (target <= +{TARGET_PCT:.0f}: {sverdict})",
                     f"{statistics.median(r['baseline_ops_per_s'] for r in server):.0f}",
                     f"{statistics.median(r['apf_ops_per_s'] for r in server):.0f}"])
        print(f"\n2. bosun server, {args.clients} clients of a non-admin user, {args.pods} pod creates per run")
        print(text_table(["run", "off cpu ms/create", "on cpu ms/create", "added %", "off creates/s",
                          "on creates/s"], rows))
        result["server"] = {"runs": server, "median_added_pct": med_pct, "target_added_pct": TARGET_PCT,
                            "verdict": sverdict}
    if not args.no_write:
        write_result(result, RESULTS / f"apf-{time.strftime('%Y%m%d-%H%M%S')}.json")


if __name__ == "__main__":
    main()
