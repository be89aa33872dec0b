"""Alert evaluation and delivery cost, in process (no API server: the rules read the same
object lists an informer holds):

    .venv/bin/python bench/alerts.py [--nodes 1000] [--pods 10000] [--runs 20]

* evaluation: one pass of every built-in rule, the engine, silences, the notifier and the
  status listing over ``--nodes`` nodes and ``--pods`` pods (1% of pods crash looping, 1% of
  nodes not ready, 100 HPAs; no TLS Secrets), as the alerting component does every
  ``evaluationInterval``;
* delivery: from a notification being due to its arrival at a webhook on loopback.

Targets: an evaluation well inside the default 10 s interval (< 1 s at 10,000 pods); a
webhook delivery < 100 ms on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from _cli import results_header, run_async, text_table, write_result
from _procs import ROOT
from bosun.alerting.builtin import BUILTIN, Cluster, RuleSettings
from bosun.alerting.config import Route, WebhookSpec
from bosun.alerting.engine import Engine
from bosun.alerting.model import RuleSource
from bosun.alerting.notify import Notifier
from bosun.alerting.receivers import WebhookIntegration
from bosun.alerting.silences import Silence, muted_by, parse_matcher
from bosun.alerting.status import render

EVAL_TARGET_MS, DELIVERY_TARGET_MS = 1000.0, 100.0
Obj = dict[str, Any]


class Objs:
    def __init__(self, items: list[Obj]) -> None:
        self.items = items

    def list(self, namespace: str | None = None) -> list[Obj]:
        return self.items


def objects(nodes: int, pods: int) -> Cluster:
    node_list = [{"metadata": {"name": f"n{i}"}, "status": {"conditions": [
        {"type": "Ready", "status": "False" if i % 100 == 0 else "True"},
        {"type": "MemoryPressure", "status": "False"}, {"type": "DiskPressure", "status": "False"}]}}
        for i in range(nodes)]
    pod_list = []
    for i in range(pods):
        state: Obj = {"waiting": {"reason": "CrashLoopBackOff"}} if i % 100 == 0 else {"running": {}}
        pod_list.append({"metadata": {"name": f"p{i}", "namespace": f"ns{i % 50}", "uid": f"u{i}"},
                         "status": {"containerStatuses": [{"name": "app", "state": state, "restartCount": i % 3}]}})
    hpas = [{"metadata": {"name": f"h{i}", "namespace": "ns0"}, "spec": {"maxReplicas": 5},
             "status": {"currentReplicas": 5 if i % 10 == 0 else 2}} for i in range(100)]
    return Cluster(Objs(pod_list), Objs(node_list), Objs(hpas), Objs([]))


def evaluation_ms(cluster: Cluster, runs: int) -> tuple[list[float], int]:
    sources: list[tuple[RuleSource, RuleSettings]] = [(b.make(cluster), b.settings) for b in BUILTIN.values()]
    engine, notifier = Engine(), Notifier()
    route = Route("ops", group_wait=0.0)
    silences = [Silence("s", (parse_matcher("namespace=ns7"),), 0.0, 1e12)]
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        engine.evaluate(sources, 1000.0 + i * 10)
        muted = {a.fingerprint for a in engine.alerts.values() if muted_by(silences, a.labels, 1000.0)}
        firing = [a for a in engine.firing() if a.fingerprint not in muted]
        for note in notifier.due(lambda a: (route, ["ops/webhook/0"]), firing, muted, 1000.0 + i * 10):
            notifier.delivered(note, 1000.0 + i * 10)
        render(engine.alerts.values(), dict.fromkeys(muted, "s"), "ok")  # the status it would write
        times.append((time.perf_counter() - t0) * 1000)
    return times, len(engine.alerts)


async def delivery_ms(runs: int, cluster: Cluster) -> list[float]:
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        arrived.put_nowait(time.perf_counter())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]

    async def no_secret(ref: Any) -> str:
        return ""

    integration = WebhookIntegration("ops/webhook/0", WebhookSpec(url=f"http://127.0.0.1:{port}/hook"), no_secret)
    engine = Engine()
    crash = BUILTIN["KubePodCrashLooping"]
    engine.evaluate([(crash.make(cluster), crash.settings)], 0.0)
    out = []
    try:
        for i in range(runs):
            notifier = Notifier()
            route = Route("ops", group_wait=0.0)
            t0 = time.perf_counter()
            notes = notifier.due(lambda a, r=route: (r, ["ops/webhook/0"]), engine.firing()[:1], set(), float(i))
            await integration.send(notes[0])
            out.append((await arrived.get() - t0) * 1000)
    finally:
        await runner.cleanup()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    header = results_header(args, "in process; other work on the machine as it happened")
    cluster = objects(args.nodes, args.pods)
    evals, alerts = evaluation_ms(cluster, args.runs)
    deliveries = run_async(delivery_ms(args.runs, cluster))
    ev_med, dl_med = statistics.median(evals), statistics.median(deliveries)
    rows = [["evaluation (ms)", f"{ev_med:.1f}", f"{max(evals):.1f}", f"< {EVAL_TARGET_MS:.0f}",
             "met" if ev_med < EVAL_TARGET_MS else "MISSED"],
            ["webhook delivery (ms)", f"{dl_med:.1f}", f"{max(deliveries):.1f}", f"< {DELIVERY_TARGET_MS:.0f}",
             "met" if dl_med < DELIVERY_TARGET_MS else "MISSED"]]
    print(f"loop speed {header['machine']['loop_mops']} Mops/s; {args.nodes} nodes, {args.pods} pods, "
          f"{alerts} active alerts\n")
    print(text_table(["measure", "median", "max", "target", "verdict"], rows))
    if not args.no_write:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        write_result({**header, "active_alerts": alerts,
                      "evaluation_ms": {"median": ev_med, "max": max(evals), "target": EVAL_TARGET_MS},
                      "delivery_ms": {"median": dl_med, "max": max(deliveries), "target": DELIVERY_TARGET_MS}},
                     Path(ROOT) / "bench" / "results" / f"alerts-{stamp}.json")


if __name__ == "__main__":
    main()
