"""The autoscaling half of bench/metrics.py: from a metric crossing its HPA's threshold to
the HPA's scale write, on a real one-node cluster (`bosun up --runtime process`, every
default: agents sample every 10 s, the history every 10 s, HPAs every 15 s).

- cpu:    a pod idles until the run's file appears, then burns a core; its HPA targets 50%
          of a 100m request;
- custom: a pod serves ``queue_depth 5`` (Prometheus text) and the run rewrites it to 50;
          its HPA's Pods metric targets an average of 10.

Time is from the change (file written) to the Deployment's spec.replicas leaving 1, seen by
polling the Deployment every 50 ms. The custom run also has a user alert rule
(``queue_depth > 20``, ``for: 0s``, in a ConfigMap labelled ``bosun.io/alert-rules``) and the
cluster's alerting sends to a webhook on loopback in this process, with every default
(evaluation as each history round lands, ``groupWait`` 5 s): the same change to the webhook's receipt of the
firing message is the alert's latency. A real crossing falls anywhere within the HPA's 15 s
period, so each run waits a random 0-15 s (seeded by the run number) after the HPA first
reads its metric before making the change; starting right after a sync would measure the
worst case every time."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from _procs import free_port
from bosun.api.registry import must_by_plural
from bosun.client.rest import ApiError, Client

Obj = dict[str, Any]
BOSUN = str(Path(sys.executable).with_name("bosun"))
DEPLOYMENTS = must_by_plural("apps", "v1", "deployments")
HPAS = must_by_plural("autoscaling", "v2", "horizontalpodautoscalers")
NAMESPACES = must_by_plural("", "v1", "namespaces")
CONFIGMAPS = must_by_plural("", "v1", "configmaps")
ALERT_RULE = """
groups:
- name: bench
  rules:
  - alert: QueueDeep
    expr: queue_depth{{namespace="{ns}"}} > 20
    for: 0s
"""
SYNC_PERIOD = 15.0  # the HPA controller's default

BURN = """
import os, time
while not os.path.exists({flag!r}):
    time.sleep(0.05)
while True:
    pass
"""
SERVE = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = open({path!r}, 'rb').read()
        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()
"""


class Up:
    """`bosun up --runtime process` in ``tmp``; stopped (SIGINT, then SIGKILL) by close()."""

    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "up"
        self.proc = subprocess.Popen(
            [BOSUN, "up", "--data-dir", str(self.data), "--listen", f"127.0.0.1:{free_port()}", "--runtime",
             "process", "--agent-port", str(free_port())],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        deadline = time.time() + 90
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line or line.strip() == "ready":
                break
        self.kubeconfig = str(self.data / "kubeconfig")

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def deployment(name: str, source: str, *, cpu: str = "", annotations: dict[str, str] | None = None) -> Obj:
    container: Obj = {"name": "app", "image": "host", "command": ["python3", "-c", source]}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}}}}


def hpa(name: str, metric: Obj) -> Obj:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "minReplicas": 1, "maxReplicas": 3, "metrics": [metric]}}


async def _settled(client: Client, ns: str, name: str, within: float) -> None:
    """Until the HPA reads its metric (ScalingActive True), so the run starts from a working HPA."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        obj = await client.get(HPAS, name, ns)
        conds = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}
        if conds.get("ScalingActive") == "True":
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"HPA {ns}/{name} never read its metric")


async def _scaled(client: Client, ns: str, name: str, since: float, within: float) -> float:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        d = await client.get(DEPLOYMENTS, name, ns)
        if int(d["spec"].get("replicas") or 0) > 1:
            return time.monotonic() - since
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{ns}/{name} was not scaled within {within}s")


class Webhook:
    """A Slack-compatible webhook on loopback: when each message arrived (monotonic time)."""

    def __init__(self) -> None:
        self.received: list[tuple[float, bytes]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def post(request: web.Request) -> web.Response:
            self.received.append((time.monotonic(), await request.read()))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", post)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def firing(self, ns: str, since: float, within: float) -> float:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for at, body in self.received:
                text = str(orjson.loads(body).get("text", ""))
                if at >= since and text.startswith("[FIRING") and "QueueDeep" in text and ns.encode() in body:
                    return at - since
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no QueueDeep alert for {ns} within {within}s")


async def one(client: Client, tmp: Path, kind: str, run: int, within: float,
              hook: Webhook | None = None) -> tuple[float, float | None]:
    ns = f"hpa-{kind}-{run}-{os.getpid()}"
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        flag = tmp / f"{ns}.flag"
        if kind == "cpu":
            await client.create(DEPLOYMENTS, deployment("app", BURN.format(flag=str(flag)), cpu="100m"), ns)
            await client.create(HPAS, hpa("app", {"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}), ns)
        else:
            port = free_port()
            flag.write_text("# TYPE queue_depth gauge\nqueue_depth 5\n")
            scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)}
            await client.create(DEPLOYMENTS, deployment("app", SERVE.format(path=str(flag), port=port),
                                                        annotations=scrape), ns)
            await client.create(HPAS, hpa("app", {"type": "Pods", "pods": {
                "metric": {"name": "queue_depth"}, "target": {"type": "AverageValue", "averageValue": "10"}}}), ns)
            if hook is not None:
                await client.create(CONFIGMAPS, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "rules", "labels": {"bosun.io/alert-rules": "true"}},
                    "data": {"rules.yaml": ALERT_RULE.format(ns=ns)}}, ns)
        await _settled(client, ns, "app", within)
        await asyncio.sleep(random.Random(f"{kind}-{run}").uniform(0, SYNC_PERIOD))
        since = time.monotonic()
        if kind == "cpu":
            flag.write_text("go")
        else:
            tmp_flag = flag.with_suffix(".new")
            tmp_flag.write_text("# TYPE queue_depth gauge\nqueue_depth 50\n")
            tmp_flag.replace(flag)
        if hook is None:
            return await _scaled(client, ns, "app", since, within), None
        scaled, alerted = await asyncio.gather(_scaled(client, ns, "app", since, within),
                                               hook.firing(ns, since, within))
        return scaled, alerted
    finally:
        try:
            await client.delete(NAMESPACES, ns)
        except ApiError:
            pass


async def measure(tmp: Path, runs: int, within: float) -> Obj:
    up = Up(tmp)
    hook = Webhook()
    try:
        await hook.start()
        client = Client.from_kubeconfig(up.kubeconfig)
        try:
            config = f"receivers:\n- name: bench\n  webhooks: [{{url: \"{hook.url}\"}}]\nroute: {{receiver: bench}}\n"
            await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "bosun-alerting"},
                                             "data": {"config.yaml": config}}, "kube-system")
            out: Obj = {"cpu": [], "custom": [], "alert": []}
            for r in range(runs):
                out["cpu"].append((await one(client, tmp, "cpu", r, within))[0])
            for r in range(runs):
                scaled, alerted = await one(client, tmp, "custom", r, within, hook)
                out["custom"].append(scaled)
                out["alert"].append(alerted)
            return out
        finally:
            await client.close()
    finally:
        await hook.stop()
        up.close()
