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
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography import x509
from tests.conftest import RunningServer, served
from tests.integration.alert_receivers import Webhook, free_port
from tests.integration.helpers import agent_config, client_for, create_namespace, eventually, node_name

from bosun.agent.agent import Agent
from bosun.agent.runtime.process import ProcessDriver
from bosun.alerting.clustercerts import ClientCertificates, ClusterCertificateExpiring
from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource
from bosun.controllers.alerting import ClientQuerier
from bosun.monitoring.history import HistoryConfig

pytestmark = pytest.mark.timeout(120)

PODS, NAMESPACES, CONFIGMAPS, PVCS, PVS = (resource("", "v1", p) for p in (
    "pods", "namespaces", "configmaps", "persistentvolumeclaims", "persistentvolumes"))
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
        query = urlencode({"query": f'max(pod_container_restarts_total{{namespace="{ns}"}})'})
        raw = await asyncio.to_thread(
            subprocess.run, ["/usr/bin/kubectl", "--kubeconfig", plane.kubeconfig, "get", "--raw",
                             f"/metrics/query?{query}"], capture_output=True, text=True, timeout=30)
        assert raw.returncode == 0, raw.stderr
        assert json.loads(raw.stdout)["data"]["result"][0]["value"][1] == "5"

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


@pytest.fixture
async def agent(plane: RunningServer, tmp_path: Path) -> AsyncIterator[Agent]:
    config = agent_config(tmp_path / "agent", node_name(tmp_path, "check"))
    driver = ProcessDriver(config.runtime_dir / "process", "127.0.0.1")
    c = client_for(plane)
    node = Agent(c, config, driver, node_ip="127.0.0.1")
    await node.start()
    try:
        yield node
    finally:
        await node.stop()
        with contextlib.suppress(FileNotFoundError):
            for ctr in await driver.list_containers():
                await driver.remove_container(ctr.id)
        with contextlib.suppress(ApiError):
            await c.delete(resource("", "v1", "nodes"), config.node_name)
        await c.close()


def checked_pod(name: str, node: str, command: list[str], check: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": {"bosun.io/http-check": check}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": "host", "command": command}]}}


async def test_http_check_records_status_and_latency_and_fires_when_failing(
        plane: RunningServer, client: Client, agent: Agent, webhook: Webhook) -> None:
    c = client
    ns = f"check-{uuid.uuid4().hex[:8]}"
    await create_namespace(c, ns)
    port = free_port()
    config = f"""
receivers:
- name: chat
  webhooks: [{{url: "{webhook.url}"}}]
route: {{receiver: chat, groupWait: 1s, groupInterval: 1s}}
evaluationInterval: 300ms
rules:
  KubeHttpCheckFailing: {{for: 0s}}
"""
    await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bosun-alerting"},
                                "data": {"config.yaml": config}}, SYSTEM)
    node = agent.config.node_name
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    try:
        # A path: the pod's own IP and port; an absolute URL: fetched from the pod's node.
        await c.create(PODS, {**checked_pod("web", node, server, "/"), "spec": {
            **checked_pod("web", node, server, "/")["spec"],
            "containers": [{"name": "main", "image": "host", "command": server, "ports": [{"containerPort": port}]}]}},
            ns)
        await c.create(PODS, checked_pod("monitor", node, ["sleep", "300"], f"http://127.0.0.1:{port}/nope"), ns)

        async def probes() -> dict[str, tuple[str, str]] | None:
            """pod -> (status code, success), as the history has them."""
            seen: dict[str, dict[str, str]] = {}
            for metric in ("probe_http_status_code", "probe_success"):
                out = await c.request("GET", "/metrics/query", params={"query": f'{metric}{{namespace="{ns}"}}'})
                for r in out["data"]["result"]:
                    seen.setdefault(r["metric"]["pod"], {})[metric] = r["value"][1]
            found = {pod: (m.get("probe_http_status_code", ""), m.get("probe_success", "")) for pod, m in seen.items()}
            return found if len(found) == 2 and all(a and b for a, b in found.values()) else None

        found = await eventually(probes, 60, "both checks in the history", step=0.5)
        assert found == {"web": ("200", "1"), "monitor": ("404", "0")}
        latency = await c.request("GET", "/metrics/query", params={"query": 'probe_duration_seconds{pod="web"}'})
        assert 0 < float(latency["data"]["result"][0]["value"][1]) < 5

        def firing() -> list[Obj]:
            return [b for b in webhook.received if b["text"].startswith("[FIRING:1] KubeHttpCheckFailing")]

        await eventually(lambda: asyncio.sleep(0, firing()), 30, "the HTTP check alert at the webhook", step=0.3)
        assert f"http://127.0.0.1:{port}/nope of pod {ns}/monitor is failing" in firing()[0]["attachments"][0]["text"]
        # The monitor's URL fixed: the check passes at the next round and the alert resolves.
        await c.patch(PODS, "monitor", {"metadata": {"annotations": {
            "bosun.io/http-check": f"http://127.0.0.1:{port}/"}}}, ns)
        await eventually(lambda: asyncio.sleep(0, [b for b in webhook.received
                                                   if b["text"].startswith("[RESOLVED] KubeHttpCheckFailing")]),
                         60, "the resolved message", step=0.3)
    finally:
        await c.delete(NAMESPACES, ns)


async def test_service_http_check_probes_each_ready_endpoint_and_fires(
        plane: RunningServer, client: Client, agent: Agent, webhook: Webhook) -> None:
    """A Service annotated ``bosun.io/http-check``: the agent checks each of its pods that the
    Service selects, on the named target port of each, every ``bosun.io/http-check-interval``;
    the history has status and latency per endpoint with a ``service`` label, and the built-in
    rule fires for the endpoint that does not answer, and resolves when it is gone."""
    c = client
    ns = f"svc-check-{uuid.uuid4().hex[:8]}"
    await create_namespace(c, ns)
    config = f"""
receivers:
- name: chat
  webhooks: [{{url: "{webhook.url}"}}]
route: {{receiver: chat, groupWait: 1s, groupInterval: 1s, groupBy: [alertname, service]}}
evaluationInterval: 300ms
rules:
  KubeHttpCheckFailing: {{for: 0s}}
"""
    await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bosun-alerting"},
                                "data": {"config.yaml": config}}, SYSTEM)
    node = agent.config.node_name
    up, down = free_port(), free_port()

    def endpoint(name: str, port: int, command: list[str]) -> Obj:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
                "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "main", "image": "host", "command": command,
                                         "ports": [{"name": "http", "containerPort": port}]}]}}

    try:
        await c.create(PODS, endpoint("ok", up, [sys.executable, "-m", "http.server", str(up), "--bind",
                                                 "127.0.0.1"]), ns)
        await c.create(PODS, endpoint("broken", down, ["sleep", "300"]), ns)  # nothing listens on its port
        await c.create(resource("", "v1", "services"), {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "annotations": {"bosun.io/http-check": "/",
                                                        "bosun.io/http-check-interval": "1s"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}, ns)

        async def probes() -> dict[str, tuple[str, str, str]] | None:
            """endpoint pod -> (status code, success, url) of the Service's check."""
            seen: dict[str, dict[str, str]] = {}
            for metric in ("probe_http_status_code", "probe_success"):
                out = await c.request("GET", "/metrics/query",
                                      params={"query": f'{metric}{{namespace="{ns}",service="web"}}'})
                for r in out["data"]["result"]:
                    seen.setdefault(r["metric"]["pod"], {"url": r["metric"]["url"]})[metric] = r["value"][1]
            found = {pod: (m.get("probe_http_status_code", ""), m.get("probe_success", ""), m["url"])
                     for pod, m in seen.items()}
            return found if len(found) == 2 and all(a and b for a, b, _ in found.values()) else None

        found = await eventually(probes, 60, "both endpoints' checks in the history", step=0.5)
        assert found == {"ok": ("200", "1", f"http://127.0.0.1:{up}/"),
                         "broken": ("0", "0", f"http://127.0.0.1:{down}/")}, found
        latency = await c.request("GET", "/metrics/query", params={
            "query": f'probe_duration_seconds{{service="web",pod="ok",namespace="{ns}"}}'})
        assert 0 < float(latency["data"]["result"][0]["value"][1]) < 5

        def firing() -> list[Obj]:
            return [b for b in webhook.received
                    if b["text"].startswith("[FIRING:1] KubeHttpCheckFailing (service=web)")]

        await eventually(lambda: asyncio.sleep(0, firing()), 30, "the Service's check alert", step=0.3)
        assert f"http://127.0.0.1:{down}/ of pod {ns}/broken is failing" in firing()[0]["attachments"][0]["text"]
        # The broken endpoint gone, its check goes with it and the alert resolves.
        await c.delete(PODS, "broken", ns)
        await eventually(lambda: asyncio.sleep(0, [b for b in webhook.received if b["text"].startswith(
            "[RESOLVED] KubeHttpCheckFailing (service=web)")]), 60, "the resolved message", step=0.3)
    finally:
        await c.delete(NAMESPACES, ns)


async def test_claim_almost_full_fires_from_the_agents_volume_stats(
        plane: RunningServer, client: Client, agent: Agent, webhook: Webhook, tmp_path: Path) -> None:
    c = client
    ns = f"pvc-{uuid.uuid4().hex[:8]}"
    await create_namespace(c, ns)
    config = f"""
receivers:
- name: chat
  webhooks: [{{url: "{webhook.url}"}}]
route: {{receiver: chat, groupWait: 1s, groupInterval: 1s}}
evaluationInterval: 300ms
rules:
  KubePersistentVolumeFillingUp: {{for: 0s}}
"""
    await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bosun-alerting"},
                                "data": {"config.yaml": config}}, SYSTEM)
    where = tmp_path / "pv"
    where.mkdir()
    pv_name = f"{ns}-data"
    try:
        await c.create(PVS, {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
                             "spec": {"capacity": {"storage": "100Ki"}, "accessModes": ["ReadWriteOnce"],
                                      "hostPath": {"path": str(where)},
                                      "claimRef": {"namespace": ns, "name": "data"}}})
        await c.create(PVCS, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                              "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": pv_name, "storageClassName": "",
                                       "resources": {"requests": {"storage": "100Ki"}}}}, ns)
        await c.patch(PVCS, "data", {"status": {"phase": "Bound", "capacity": {"storage": "100Ki"}}}, ns,
                      subresource="status")
        await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db"}, "spec": {
            "nodeName": agent.config.node_name, "terminationGracePeriodSeconds": 0,
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            "containers": [{"name": "main", "image": "host", "command": ["sleep", "300"],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}, ns)
        (where / "fill").write_bytes(b"x" * 95_000)  # what the database wrote: 24 blocks of 4 KiB, 96%

        async def ratio() -> list[Obj]:
            q = (f'kubelet_volume_stats_used_bytes{{namespace="{ns}"}} '
                 f'/ kubelet_volume_stats_capacity_bytes{{namespace="{ns}"}}')
            return list((await c.request("GET", "/metrics/query", params={"query": q}))["data"]["result"])

        found = await eventually(ratio, 60, "the claim's usage in the history", step=0.5)
        assert found[0]["metric"]["persistentvolumeclaim"] == "data" and float(found[0]["value"][1]) > 0.9

        def firing() -> list[Obj]:
            return [b for b in webhook.received if b["text"].startswith("[FIRING:1] KubePersistentVolumeFillingUp")]

        await eventually(lambda: asyncio.sleep(0, firing()), 30, "the almost-full alert at the webhook", step=0.3)
        assert f"PersistentVolumeClaim {ns}/data is almost full" in firing()[0]["attachments"][0]["text"]
    finally:
        await c.delete(NAMESPACES, ns)
        with contextlib.suppress(ApiError):
            await c.delete(PVS, pv_name)


async def test_cluster_certificates_are_read_as_a_client_sees_them(plane: RunningServer, client: Client) -> None:
    """The CA the control plane's client trusts and the certificate the API server serves in a
    handshake; with a threshold longer than their lives, the rule holds for both."""
    found = await ClientCertificates(client.config).certificates()
    ca = x509.load_pem_x509_certificate(await asyncio.to_thread(Path(plane.ca_path).read_bytes))
    whats = [w for w, _ in found]
    assert len(found) == 2 and whats[0].startswith("cluster CA ") and whats[1].startswith("API server 127.0.0.1:")
    assert found[0][1] == ca.not_valid_after_utc.timestamp()
    now = time.time()
    assert all(ends > now for _, ends in found)
    rule = ClusterCertificateExpiring(ClientCertificates(client.config), soon=100 * 365 * 86400.0)
    await rule.refresh(ClientQuerier(client), now)
    summaries = [c.annotations["summary"] for c in rule.active(now)]
    assert len(summaries) == 2 and all("certificate expires in" in s for s in summaries)
    assert list(ClusterCertificateExpiring(ClientCertificates(client.config)).active(now)) == []


async def test_rules_are_evaluated_as_each_history_round_lands(
        plane: RunningServer, client: Client, webhook: Webhook) -> None:
    """With an ``evaluationInterval`` of an hour, a rule over the history still fires as soon as
    the history has the value: the alerting follows the collector's rounds (``/metrics/rounds``)
    instead of its own timer. (Object changes alone do not query the history again, so this is
    the rounds' doing.)"""
    c = client
    ns = f"rounds-{uuid.uuid4().hex[:8]}"
    await create_namespace(c, ns)
    first = await c.request("GET", "/metrics/rounds")
    assert first["resolution"] == 1.0 and first["round"] > 0
    t0 = time.monotonic()
    later = await c.request("GET", "/metrics/rounds", params={"after": str(first["round"]), "timeoutSeconds": "5"})
    assert later["round"] > first["round"] and later["time"] > first["time"] and time.monotonic() - t0 < 4.5
    raw = await asyncio.to_thread(
        subprocess.run, ["/usr/bin/kubectl", "--kubeconfig", plane.kubeconfig, "get", "--raw",
                         "/metrics/rounds?after=x"], capture_output=True, text=True, timeout=30)
    assert raw.returncode != 0 and "after: 'x' is not a round number" in raw.stderr, raw.stderr
    with pytest.raises(ApiError) as err:
        await c.request("GET", "/metrics/rounds", params={"after": "1", "timeoutSeconds": "600"})
    assert err.value.status == 400 and "timeoutSeconds: must be between 0 and 30" in str(err.value.message)

    config = f"""
receivers:
- name: chat
  webhooks: [{{url: "{webhook.url}"}}]
route: {{receiver: chat, groupBy: [alertname, team], groupWait: 1s, groupInterval: 1s}}
evaluationInterval: 1h
"""
    await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bosun-alerting"},
                                "data": {"config.yaml": config}}, SYSTEM)
    try:
        await c.create(CONFIGMAPS, rules_configmap("web-rules", RULE.format(ns=ns)), ns)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"},
               "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}}
        await c.create(PODS, pod, ns)
        await asyncio.sleep(2)  # the configuration and rule file read, evaluated with nothing to find
        statuses = [{"name": "a", "restartCount": 5, "ready": False, "image": "x", "imageID": "",
                     "state": {"running": {}}}]
        await c.patch(PODS, "web-1", {"status": {"phase": "Running", "containerStatuses": statuses}}, ns,
                      subresource="status")
        changed = time.monotonic()

        def fired() -> list[Obj]:
            return [b for b in webhook.received if b["text"] == "[FIRING:1] PodRestartsHigh (team=web)"]

        await eventually(lambda: asyncio.sleep(0, fired()), 30, "the rule's alert at the webhook", step=0.2)
        # A round (1 s here), the rule's for: 1s, groupWait 1s: seconds, not the hour.
        assert time.monotonic() - changed < 20
    finally:
        await c.delete(NAMESPACES, ns)


async def test_service_address_and_selectorless_endpoints_are_checked_and_fire(
        plane: RunningServer, client: Client, agent: Agent, webhook: Webhook) -> None:
    """``bosun.io/http-check-target: both`` on a Service without a selector: the endpoints its
    user wrote in EndpointSlices are checked (one answering, one not) and so is its ClusterIP
    (nothing routes it in this test: it fails, as it would for a client); each is a series of the
    Service's (``service``, ``url``, no ``pod``) and the failing ones fire the Service rule."""
    c = client
    ns = f"svc-ip-{uuid.uuid4().hex[:8]}"
    await create_namespace(c, ns)
    config = f"""
receivers:
- name: chat
  webhooks: [{{url: "{webhook.url}"}}]
route: {{receiver: chat, groupWait: 1s, groupInterval: 1s, groupBy: [alertname, service]}}
rules:
  KubeServiceHttpCheckFailing: {{for: 0s}}
"""
    await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bosun-alerting"},
                                "data": {"config.yaml": config}}, SYSTEM)
    up, down = free_port(), free_port()
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "http.server", str(up), "--bind", "127.0.0.1",
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    slices = resource("discovery.k8s.io", "v1", "endpointslices")
    try:
        svc = await c.create(resource("", "v1", "services"), {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ext", "annotations": {
                "bosun.io/http-check": "/", "bosun.io/http-check-interval": "1s",
                "bosun.io/http-check-target": "both"}},
            "spec": {"ports": [{"name": "web", "port": 80}]}}, ns)
        cluster_ip = svc["spec"]["clusterIP"]
        for name, port in (("ext-up", up), ("ext-down", down)):
            await c.create(slices, {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "ext"}},
                "addressType": "IPv4", "ports": [{"name": "web", "port": port}],
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}, ns)

        async def probes() -> dict[str, tuple[str, bool]] | None:
            """url -> (probe_success, has a pod label) of the Service's checks."""
            out = await c.request("GET", "/metrics/query", params={"query": f'probe_success{{namespace="{ns}"}}'})
            found = {r["metric"]["url"]: (r["value"][1], "pod" in r["metric"]) for r in out["data"]["result"]
                     if r["metric"].get("service") == "ext"}
            return found if len(found) == 3 else None

        found = await eventually(probes, 60, "the Service's three checks in the history", step=0.5)
        assert found == {f"http://127.0.0.1:{up}/": ("1", False), f"http://127.0.0.1:{down}/": ("0", False),
                         f"http://{cluster_ip}:80/": ("0", False)}, found

        def firing() -> list[Obj]:
            return [b for b in webhook.received
                    if b["text"].startswith("[FIRING:2] KubeServiceHttpCheckFailing (service=ext)")]

        await eventually(lambda: asyncio.sleep(0, firing()), 30, "the Service check alert", step=0.3)
        text = firing()[0]["attachments"][0]["text"]
        assert f"HTTP check http://127.0.0.1:{down}/ of service {ns}/ext is failing" in text
        assert f"HTTP check http://{cluster_ip}:80/ of service {ns}/ext is failing" in text
        assert not [b for b in webhook.received if "KubeHttpCheckFailing" in b["text"]]  # no pod's rule
    finally:
        server.terminate()
        await server.wait()
        await c.delete(NAMESPACES, ns)
