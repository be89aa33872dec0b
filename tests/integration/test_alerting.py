"""Alerts as a user who set only an email address and a webhook URL sees them: a crashing pod
(a real process on a real node agent) reaches both receivers in one grouped message each,
also when both were down at first (retried with back-off, an Event says so), then a resolved
message; a silenced one stays quiet; a node whose agent stops heartbeating (a fake: a hollow
node, whose Lease stops renewing) fires KubeNodeNotReady; a malformed configuration is
reported in one line and the last good one keeps working.

Every interval is shortened in the test's configuration; nothing is timed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.conftest import RunningServer, served
from tests.integration.alert_receivers import SMTP_PASSWORD, SMTP_USER, Mailbox, Webhook, free_port, smtp_server
from tests.integration.helpers import agent_config, client_for, create_namespace, eventually, node_name

from bosun.agent.agent import Agent
from bosun.agent.runtime.process import ProcessDriver
from bosun.alerting import status
from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource
from bosun.hollow.cluster import HollowCluster

pytestmark = pytest.mark.timeout(150)

PODS, NAMESPACES, CONFIGMAPS, SECRETS, EVENTS = (
    resource("", "v1", p) for p in ("pods", "namespaces", "configmaps", "secrets", "events"))
BOSUN = str(Path(sys.executable).parent / "bosun")
SYSTEM = "kube-system"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    options = ControlPlaneOptions(controllers=["alerting", "nodelifecycle"], scheduler=False, lease_duration=4.0,
                                  node_monitor_grace_period=2.0, pod_eviction_timeout=60.0)
    yield from served(tmp_path_factory.mktemp("alerting"), options=options)


@pytest.fixture
async def client(plane: RunningServer) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(plane.kubeconfig) as c:
        yield c
        for name in ("bosun-alerting", "bosun-alerting-silences"):
            with contextlib.suppress(ApiError):
                await c.delete(CONFIGMAPS, name, SYSTEM)


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    await hook.start()
    try:
        yield hook
    finally:
        await hook.stop()


def config_yaml(webhook_secret: str, smtp_port: int, extra_rules: str = "") -> str:
    return f"""
receivers:
- name: ops
  webhooks:
  - urlSecret: {{name: {webhook_secret}, key: url}}
  emails:
  - to: [ops@example.com]
    from: bosun@example.com
    smarthost: 127.0.0.1:{smtp_port}
    username: {SMTP_USER}
    passwordSecret: {{name: alert-smtp, key: password}}
    caSecret: {{name: alert-smtp, key: ca.crt}}
route:
  receiver: ops
  groupWait: 1s
  groupInterval: 1s
evaluationInterval: 300ms
delivery: {{retryInitial: 200ms, retryMax: 1s}}
rules:
  KubePodCrashLooping: {{keepFiringFor: 5s}}
  KubeNodeNotReady: {{for: 0s}}
{extra_rules}"""


async def put(c: Client, res: Any, name: str, body: Obj) -> None:
    """Create or merge-patch a Secret or ConfigMap of kube-system."""
    obj = {"apiVersion": "v1", "kind": "Secret" if res is SECRETS else "ConfigMap",
           "metadata": {"name": name, "namespace": SYSTEM}, **body}
    try:
        await c.create(res, obj, SYSTEM)
    except ApiError as e:
        if e.status != 409:
            raise
        await c.patch(res, name, body, SYSTEM)


async def configure(c: Client, plane: RunningServer, webhook: Webhook, smtp_port: int) -> None:
    """What the user writes: two Secrets and the ConfigMap."""
    url = base64.b64encode(webhook.url.encode()).decode()
    await put(c, SECRETS, "alert-webhook", {"data": {"url": url}})
    ca = (plane.data_dir / "pki" / "ca.crt").read_bytes()  # the SMTP server's certificate is the plane's
    await put(c, SECRETS, "alert-smtp", {"data": {"password": base64.b64encode(SMTP_PASSWORD.encode()).decode(),
                                                  "ca.crt": base64.b64encode(ca).decode()}})
    await put(c, CONFIGMAPS, "bosun-alerting",
              {"data": {"config.yaml": config_yaml("alert-webhook", smtp_port)}})


async def bosun(plane: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as users run it, off the event loop (the node agent shares the loop)."""
    return await asyncio.to_thread(subprocess.run, [BOSUN, "--kubeconfig", plane.kubeconfig, *args],
                                   capture_output=True, text=True, timeout=30, check=False)


async def listed(c: Client) -> list[Obj]:
    """The alerts as `kubectl get configmap bosun-alerts -n kube-system` shows them."""
    try:
        cm = await c.get(CONFIGMAPS, "bosun-alerts", SYSTEM)
    except ApiError:
        return []
    return status.parse(cm.get("data") or {})[0]


async def events(c: Client, reason: str, namespace: str = SYSTEM) -> list[Obj]:
    items: list[Obj] = (await c.list(EVENTS, namespace))["items"]
    return [e for e in items if e.get("reason") == reason]


def of_group(texts: list[str], alert: str, label: str) -> list[str]:
    return [t for t in texts if alert in t and label in t]


@pytest.fixture
async def agent(plane: RunningServer, tmp_path: Path) -> AsyncIterator[Agent]:
    config = agent_config(tmp_path / "agent", node_name(tmp_path, "alert"))
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


def crashing_pod(name: str, node: str) -> Obj:
    crash = ["sh", "-c", "exit 1"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "a", "image": "host", "command": crash},
                                    {"name": "b", "image": "host", "command": crash}]}}


async def test_crashing_pod_reaches_both_receivers_once_resolves_and_is_silenced(
        plane: RunningServer, client: Client, agent: Agent, webhook: Webhook, tmp_path: Path) -> None:
    c = client
    ns = f"alert-{uuid.uuid4().hex[:8]}"
    await create_namespace(c, ns)
    mailbox = Mailbox()
    smtp_port = free_port()
    webhook.down = True  # both receivers are down at first: the webhook refuses, no SMTP server listens
    await configure(c, plane, webhook, smtp_port)
    try:
        await c.create(PODS, crashing_pod("crash", agent.config.node_name), ns)
        group = f"namespace={ns}"

        async def both_firing() -> bool:
            rows = [r for r in await listed(c) if r["labels"].get("namespace") == ns
                    and r["alertname"] == "KubePodCrashLooping"]
            return len(rows) == 2 and all(r["state"] == "firing" for r in rows)

        await eventually(both_firing, 60, "both containers' alerts firing", step=0.3)
        failed = await eventually(lambda: _failures(c, ("webhook", "email")), 30, "delivery failures as Events")
        assert all(e["type"] == "Warning" for e in failed)
        await eventually(lambda: _at_least(webhook.refused, 3), 30, "the webhook retried")

        pki = plane.data_dir / "pki"
        with smtp_server(smtp_port, pki / "apiserver.crt", pki / "apiserver.key", mailbox):
            webhook.down = False
            await eventually(lambda: _got(webhook.texts(), mailbox.subjects(), "[FIRING:2] KubePodCrashLooping",
                                          group), 30, "the grouped firing message on both")
            as_json = await bosun(plane, "alerts", "ls", "-o", "json")
            rows = [r for r in json.loads(as_json.stdout)["alerts"] if r["labels"].get("namespace") == ns]
            assert {(r["alertname"], r["labels"]["container"], r["state"]) for r in rows} >= {
                ("KubePodCrashLooping", "a", "firing"), ("KubePodCrashLooping", "b", "firing")}

            async def in_table() -> bool:
                # Eventually: on a loaded machine the 4 s leader lease may move, and a new
                # alerting instance lists the alert again once it has evaluated (as a restarted
                # Prometheus does).
                table = await bosun(plane, "alerts", "ls")
                return "KubePodCrashLooping" in table.stdout and "pod=crash" in table.stdout

            await eventually(in_table, 20, "the firing alerts in `bosun alerts ls`", step=0.5)
            fired = await events(c, "AlertFiring", ns)
            assert {e["involvedObject"]["name"] for e in fired} == {"crash"}

            await c.delete(PODS, "crash", ns, grace_period_seconds=0)  # fixed: the crashing pod is gone
            await eventually(lambda: _got(webhook.texts(), mailbox.subjects(), "[RESOLVED] KubePodCrashLooping",
                                          group), 60, "the resolved message on both")
            resolved = await eventually(lambda: events(c, "AlertResolved", ns), 30, "AlertResolved events")
            assert {e["involvedObject"]["name"] for e in resolved} == {"crash"}
            for texts in (webhook.texts(), mailbox.subjects()):
                mine = of_group(texts, "KubePodCrashLooping", group)
                # One firing message with both alerts, never repeated; the end may come in two steps
                # (one container's alert can resolve a moment before the other's: "[FIRING:1]" then).
                assert mine[0] == f"[FIRING:2] KubePodCrashLooping ({group})", mine
                assert mine[-1] == f"[RESOLVED] KubePodCrashLooping ({group})", mine
                assert mine[1:-1] in ([], [f"[FIRING:1] KubePodCrashLooping ({group})"]), mine
            body = next(b for b in webhook.received if group in b["text"])
            assert {a["labels"]["container"] for a in body["alerts"]} == {"a", "b"}
            assert body["attachments"][0]["color"] == "danger"

            out = await bosun(plane, "alerts", "silence", f"namespace={ns}", "--duration", "1h", "--comment", "known")
            assert out.returncode == 0, out.stderr
            silence_id = out.stdout.strip()
            assert silence_id in (await bosun(plane, "alerts", "silences")).stdout
            before = len(webhook.received), len(mailbox.messages)
            await c.create(PODS, crashing_pod("crash2", agent.config.node_name), ns)

            async def silenced_long_enough() -> bool:
                rows = [r for r in await listed(c) if r["labels"].get("pod") == "crash2"
                        and r["alertname"] == "KubePodCrashLooping"]
                return len(rows) == 2 and all(r["state"] == "firing" and r.get("silencedBy") == silence_id
                                              and time.time() - _epoch(r["since"]) > 3 for r in rows)

            await eventually(silenced_long_enough, 60, "crash2 firing under the silence past groupWait", step=0.3)
            assert (len(webhook.received), len(mailbox.messages)) == before

            out = await bosun(plane, "alerts", "unsilence", silence_id)  # the silence ends: now it is said
            assert out.returncode == 0, out.stderr
            assert silence_id not in (await bosun(plane, "alerts", "silences")).stdout

            async def crash2_sent() -> bool:
                return any(a["labels"].get("pod") == "crash2" and b["status"] == "firing"
                           for b in webhook.received for a in b["alerts"])

            await eventually(crash2_sent, 30, "crash2's alerts sent once the silence ended")
    finally:
        with contextlib.suppress(ApiError):
            await c.delete(NAMESPACES, ns)


async def _at_least(n: int, wanted: int) -> bool:
    return n >= wanted


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def _got(hook: list[str], mail: list[str], head: str, group: str) -> bool:
    return any(t.startswith(head) and group in t for t in hook) and any(t.startswith(head) and group in t
                                                                       for t in mail)


async def _failures(c: Client, kinds: tuple[str, ...]) -> list[Obj]:
    found = await events(c, "AlertDeliveryFailed")
    ok = all(any(f"ops/{k}/0" in e["message"] for e in found) for k in kinds)
    return found if ok else []


async def test_dead_node_fires_not_ready_and_bad_config_keeps_the_last_good(
        plane: RunningServer, client: Client, webhook: Webhook) -> None:
    c = client
    mailbox = Mailbox()
    smtp_port = free_port()
    pki = plane.data_dir / "pki"
    prefix = f"fake{uuid.uuid4().hex[:6]}"
    fake = HollowCluster(c, 1, heartbeat=0.4, name_prefix=prefix, pod_runtime=0)
    with smtp_server(smtp_port, pki / "apiserver.crt", pki / "apiserver.key", mailbox):
        await configure(c, plane, webhook, smtp_port)
        await fake.start()
        dead = fake.names[0]
        try:
            await fake.stop()  # its heartbeats (the node Lease) stop: node lifecycle marks it Unknown
            await eventually(lambda: _fired(webhook, mailbox, "[FIRING:1] KubeNodeNotReady", dead), 60,
                             "KubeNodeNotReady on both receivers")
            body = next(b for b in webhook.received if b["alerts"][0]["labels"].get("node") == dead)
            assert body["alerts"][0]["labels"]["severity"] == "critical"
            shown = await asyncio.to_thread(
                subprocess.run, ["kubectl", "--kubeconfig", plane.kubeconfig, "get", "configmap", "bosun-alerts",
                                 "-n", SYSTEM, "-o", "jsonpath={.data.alerts\\.yaml}"],
                capture_output=True, text=True, timeout=30, check=False)
            assert "alertname: KubeNodeNotReady" in shown.stdout and f"node: {dead}" in shown.stdout, shown

            await put(c, SECRETS, "alert-test-tls", {"type": "kubernetes.io/tls", "data": short_lived_cert()})

            async def cert_listed() -> bool:
                return any(r["alertname"] == "KubeCertificateExpiring" and r["labels"]["secret"] == "alert-test-tls"
                           for r in await listed(c))

            await eventually(cert_listed, 30, "the expiring certificate's alert")

            await put(c, CONFIGMAPS, "bosun-alerting", {"data": {"config.yaml": "receivers: [name: ops\n"}})
            bad = await eventually(lambda: events(c, "InvalidAlertingConfig"), 30, "the bad config's Event")
            assert "invalid YAML at line" in bad[0]["message"] and "\n" not in bad[0]["message"]

            async def warned() -> subprocess.CompletedProcess[str] | None:
                out = await bosun(plane, "alerts", "ls")
                head = "warning: alerting configuration error: config.yaml: invalid YAML"
                return out if out.stderr.startswith(head) else None

            out = await eventually(warned, 30, "bosun alerts ls warning of the bad config", step=0.3)
            assert out.returncode == 0 and len(out.stderr.strip().splitlines()) == 1, out.stderr

            for bad_args, why in ((["pod=~("], "bad regular expression"), (["pod"], "is not a matcher"),
                                  (["pod=x", "--duration", "soon"], "--duration: 'soon' is not a duration")):
                out = await bosun(plane, "alerts", "silence", *bad_args)
                assert out.returncode == 1 and why in out.stderr and len(out.stderr.splitlines()) == 1, out.stderr

            await fake.delete_nodes()  # the node is gone: its alert resolves, through the last good config
            await eventually(lambda: _fired(webhook, mailbox, "[RESOLVED] KubeNodeNotReady", dead), 60,
                             "the resolution, sent with the kept configuration")
        finally:
            await fake.stop()
            await fake.delete_nodes()
            with contextlib.suppress(ApiError):
                await c.delete(SECRETS, "alert-test-tls", SYSTEM)


def short_lived_cert() -> dict[str, str]:
    """A self-signed certificate that ends tomorrow, as a TLS Secret's data."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "soon.example.com")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return {"tls.crt": base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(),
            "tls.key": base64.b64encode(pem_key).decode()}


async def _fired(webhook: Webhook, mailbox: Mailbox, head: str, node: str) -> bool:
    hook = any(b["text"].startswith(head) and any(a["labels"].get("node") == node for a in b["alerts"])
               for b in webhook.received)
    with mailbox.lock:
        mail = any(str(m["Subject"]).startswith(head) and f"Node {node} " in str(m.get_payload())
                   for m in mailbox.messages)
    return hook and mail
