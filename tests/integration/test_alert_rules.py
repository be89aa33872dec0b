"""User alert rules as a user writes them: a Prometheus rule file in a ConfigMap labelled
``bosun.io/alert-rules``. A rule with a syntax error is refused with a 422 naming the key,
the rule and the line and column; a good rule over the metrics history (a pod's restart count,
as the history records it from the pod's status) fires through the grouped webhook pipeline
with its templated summary, is listed by ``bosun alerts rules``, and resolves when the rule
file is removed. ``/metrics/query`` answers the same expression as Prometheus' query API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, served
from tests.integration.alert_receivers import Webhook
from tests.integration.helpers import create_namespace, eventually

from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource
from bosun.monitoring.history import HistoryConfig

pytestmark = pytest.mark.timeout(120)

PODS, NAMESPACES, CONFIGMAPS, EVENTS = (resource("", "v1", p) for p in ("pods", "namespaces", "configmaps", "events"))
BOSUN = str(Path(sys.executable).parent / "bosun")
SYSTEM = "kube-system"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    options = ControlPlaneOptions(controllers=["alerting"], scheduler=False)
    yield from served(tmp_path_factory.mktemp("alert-rules"), options=options,
                      history=HistoryConfig(retention=300.0, resolution=1.0))


@pytest.fixture
async def client(plane: RunningServer) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(plane.kubeconfig) as c:
        yield c
        with contextlib.suppress(ApiError):
            await c.delete(CONFIGMAPS, "bosun-alerting", SYSTEM)


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    await hook.start()
    try:
        yield hook
    finally:
        await hook.stop()


def rules_configmap(name: str, rule_file: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"bosun.io/alert-rules": "true"}},
            "data": {"rules.yaml": rule_file}}


RULE = """
groups:
- name: restarts
  labels: {{team: web}}
  rules:
  - alert: PodRestartsHigh
    expr: max by (namespace, pod) (pod_container_restarts_total{{namespace="{ns}", container=~"a|b"}}) > 3
    for: 1s
    labels: {{severity: page}}
    annotations:
      summary: "{{{{ $labels.pod }}}} restarted {{{{ $value }}}} times"
"""


async def bosun(plane: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [BOSUN, "--kubeconfig", plane.kubeconfig, *args],
                                   capture_output=True, text=True, timeout=30, check=False)


async def test_rule_with_a_syntax_error_is_refused_naming_the_position(plane: RunningServer, client: Client) -> None:
    ns = f"rules-{uuid.uuid4().hex[:8]}"
    await create_namespace(client, ns)
    try:
        bad = RULE.format(ns=ns).replace("> 3", "> ")
        with pytest.raises(ApiError) as err:
            await client.create(CONFIGMAPS, rules_configmap("bad", bad), ns)
        assert err.value.status == 422
        assert "data[rules.yaml]" in str(err.value.message)
        assert "groups[0].rules[0].expr: 1:" in str(err.value.message)
        assert "unexpected end of expression" in str(err.value.message)
        unknown = RULE.format(ns=ns).replace("max by", "maxx by")
        with pytest.raises(ApiError) as err:
            await client.create(CONFIGMAPS, rules_configmap("bad", unknown), ns)
        assert err.value.status == 422 and "1:1: 'maxx' is not an aggregation" in str(err.value.message)
        # An unlabelled ConfigMap is only data: nobody parses it.
        await client.create(CONFIGMAPS, {**rules_configmap("plain", bad), "metadata": {"name": "plain"}}, ns)
        # Adding the label later is an update, checked the same way.
        with pytest.raises(ApiError) as err:
            await client.patch(CONFIGMAPS, "plain", {"metadata": {"labels": {"bosun.io/alert-rules": "true"}}}, ns)
        assert err.value.status == 422
        # kubectl apply shows the same refusal.
        manifest = json.dumps(rules_configmap("k", "groups: [{name: g, rules: [{alert: A, expr: 'rate(x)'}]}]"))
        out = await asyncio.to_thread(
            subprocess.run, ["/usr/bin/kubectl", "--kubeconfig", plane.kubeconfig, "-n", ns, "apply", "-f", "-"],
            input=manifest, capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        assert "groups[0].rules[0].expr: 1:1: rate() needs a range vector" in out.stderr, out.stderr
    finally:
        await client.delete(NAMESPACES, ns)


async def test_rule_over_the_history_fires_to_the_webhook_and_resolves(
        plane: RunningServer, client: Client, webhook: Webhook) -> None:
    c = client
    ns = f"rules-{uuid.uuid4().hex[:8]}"
    await create_namespace(c, ns)
    config = f"""
receivers:
- name: chat
  webhooks: [{{url: "{webhook.url}"}}]
route: {{receiver: chat, groupBy: [alertname, team], groupWait: 1s, groupInterval: 1s}}
evaluationInterval: 300ms
"""
    await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bosun-alerting"},
                                "data": {"config.yaml": config}}, SYSTEM)
    try:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"},
               "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}}
        await c.create(PODS, pod, ns)
        statuses = [{"name": "a", "restartCount": 5, "ready": False, "image": "x", "imageID": "",
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                    {"name": "b", "restartCount": 1, "ready": True, "image": "x", "imageID": "",
                     "state": {"running": {}}}]
        await c.patch(PODS, "web-1", {"status": {"phase": "Running", "containerStatuses": statuses}}, ns,
                      subresource="status")
        await c.create(CONFIGMAPS, rules_configmap("web-rules", RULE.format(ns=ns)), ns)

        async def answered() -> list[Obj]:
            out = await c.request("GET", "/metrics/query",
                                  params={"query": f'pod_container_restarts_total{{namespace="{ns}"}} > 2'})
            return list(out["data"]["result"])

        result = await eventually(answered, 30, "the query API answering from the history", step=0.3)
        assert [r["metric"]["container"] for r in result] == ["a"] and result[0]["value"][1] == "5"

        def fired() -> list[Obj]:
            return [b for b in webhook.received if b["text"] == "[FIRING:1] PodRestartsHigh (team=web)"]

        await eventually(lambda: asyncio.sleep(0, fired()), 30, "the rule's alert at the webhook", step=0.3)
        assert "web-1 restarted 5 times" in fired()[0]["attachments"][0]["text"]
        listed = await bosun(plane, "alerts", "ls")
        assert "PodRestartsHigh" in listed.stdout and "severity=page" in listed.stdout and "team=web" in listed.stdout
        rules = await bosun(plane, "alerts", "rules")
        assert rules.returncode == 0, rules.stderr
        line = next(x for x in rules.stdout.splitlines() if "PodRestartsHigh" in x)
        assert f"{ns}/web-rules[rules.yaml]" in line and " ok " in line

        await c.delete(CONFIGMAPS, "web-rules", ns)
        await eventually(lambda: asyncio.sleep(0, [t for t in webhook.texts() if "[RESOLVED]" in t
                                                   and "PodRestartsHigh" in t]),
                         30, "the resolved message", step=0.3)
        assert len(fired()) == 1  # grouped and de-duplicated: one firing message
    finally:
        await c.delete(NAMESPACES, ns)
