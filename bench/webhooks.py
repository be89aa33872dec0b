"""Admission webhook benchmark: what calling a webhook adds to a write.

    .venv/bin/python bench/webhooks.py [--runs 3] [--creates 200]

A `bosun server` (its own process, SQLite, no controllers) and an HTTPS webhook (its own
process, bench/_webhook_server.py, a certificate from a CA given as caBundle). Each run
creates ``--creates`` ConfigMaps one after another (a client waits for each answer), in
three phases, alternated so that the machine's load falls on all of them alike:

  none        no webhook configured (the baseline: the webhook stages find nothing to call)
  validating  one ValidatingWebhookConfiguration selecting the writes
  mutating    one MutatingWebhookConfiguration adding a label by JSONPatch

Printed: per phase, the median over the runs of each run's p50 and p99 create latency, and
what a webhook adds to the baseline's p50; target: at most 5 ms at the median (upstream's
webhooks cost a round trip on a kept-alive connection). Written to
bench/results/webhooks-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _cli import results_header, run_async, text_table, write_result
from _procs import remove_tree, start_ready, start_server, stop_process
from _stats import summarize
from bosun.api.registry import must_by_plural
from bosun.client.rest import Client
from bosun.security.pki import ensure_pki

RESULTS = Path(__file__).resolve().parent / "results"
HOOK = Path(__file__).resolve().parent / "_webhook_server.py"
TARGET_ADDED_MS = 5.0
NS = "bench"
CONFIGMAPS = must_by_plural("", "v1", "configmaps")
NAMESPACES = must_by_plural("", "v1", "namespaces")
VALIDATING = must_by_plural("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
MUTATING = must_by_plural("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
PHASES = ("none", "validating", "mutating")
Obj = dict[str, Any]


def configuration(phase: str, port: int, ca_pem: bytes) -> Obj:
    kind = "ValidatingWebhookConfiguration" if phase == "validating" else "MutatingWebhookConfiguration"
    path = "validate" if phase == "validating" else "mutate"
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": f"{phase}.bench"},
            "webhooks": [{
                "name": f"{phase}.bench.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "clientConfig": {"url": f"https://127.0.0.1:{port}/{path}",
                                 "caBundle": base64.b64encode(ca_pem).decode()},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                           "resources": ["configmaps"]}]}]}


async def creates(client: Client, phase: str, run: int, count: int) -> dict[str, float]:
    latencies = []
    start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        out = await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": f"{phase}-{run}-{i}", "labels": {"app": "bench"}},
                                               "data": {"k": "v"}}, NS)
        latencies.append(time.perf_counter() - t0)
        if phase == "mutating" and (out["metadata"].get("labels") or {}).get("bench-mutated") != "yes":
            raise RuntimeError("the mutating webhook did not act")
    return summarize(latencies, time.perf_counter() - start)


async def phase_run(client: Client, phase: str, run: int, count: int, port: int, ca_pem: bytes) -> dict[str, float]:
    if phase == "none":
        return await creates(client, phase, run, count)
    res = VALIDATING if phase == "validating" else MUTATING
    config = configuration(phase, port, ca_pem)
    await client.create(res, config)
    try:
        await asyncio.sleep(0.5)  # the server's watch cache has the configuration
        return await creates(client, phase, run, count)
    finally:
        await client.delete(res, config["metadata"]["name"])


Phases = dict[str, list[dict[str, float]]]


async def measure(kubeconfig: str, runs: int, count: int, port: int, ca_pem: bytes) -> Phases:
    out: Phases = {p: [] for p in PHASES}
    async with Client.from_kubeconfig(kubeconfig) as client:
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        await creates(client, "warmup", 0, 20)
        for run in range(runs):
            for phase in PHASES:
                out[phase].append(await phase_run(client, phase, run, count, port, ca_pem))
                print(f"run {run + 1} {phase}: {out[phase][-1]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--creates", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = parser.parse_args()
    result = results_header(args, "bench server, webhook process and client on the same machine")
    print(f"machine: {result['machine']['loop_mops']} M loop steps/s (10^7 steps: "
          f"{10 / result['machine']['loop_mops']:.2f} s)", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bosun-webhooks-bench-"))
    server = hook = None
    try:
        pki = ensure_pki(tmp / "hook-pki", ["127.0.0.1"])
        port_file = tmp / "hook.port"
        hook = start_ready([sys.executable, str(HOOK), str(pki.server_cert_path), str(pki.server_key_path),
                            str(port_file)], tmp / "hook.log", 30, "webhook server")
        server = start_server(tmp / "server", "")
        phases = run_async(measure(server.kubeconfig, args.runs, args.creates, int(port_file.read_text()),
                                   pki.ca_cert_pem))
    finally:
        if server is not None:
            server.stop()
        if hook is not None:
            stop_process(hook)
        remove_tree(tmp)
    summary: dict[str, Any] = {}
    base = statistics.median(r["p50_ms"] for r in phases["none"])
    rows = []
    for phase in PHASES:
        p50 = statistics.median(r["p50_ms"] for r in phases[phase])
        p99 = statistics.median(r["p99_ms"] for r in phases[phase])
        added = round(p50 - base, 2)
        verdict = "" if phase == "none" else ("met" if added <= TARGET_ADDED_MS else "MISSED")
        summary[phase] = {"p50_ms": p50, "p99_ms": p99, "added_p50_ms": added, "verdict": verdict}
        rows.append([phase, f"{p50:.2f}", f"{p99:.2f}", "" if phase == "none" else f"{added:+.2f}",
                     "" if phase == "none" else f"<= {TARGET_ADDED_MS:.0f}", verdict])
    print(text_table(["phase", "p50 ms", "p99 ms", "added p50 ms", "target", "verdict"], rows))
    result.update(runs=phases, summary=summary, target_added_p50_ms=TARGET_ADDED_MS)
    if not args.no_write:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        write_result(result, RESULTS / f"webhooks-{stamp}.json")


if __name__ == "__main__":
    main()
