"""Admission webhooks end to end: a real Bosun server, a real HTTPS webhook server run by the
test (aiohttp on loopback, its certificate made here and given as caBundle), configurations
registered and writes made with real kubectl 1.32.

Shown: a validating webhook's denial reaches kubectl with the webhook's words; a mutating
webhook's JSONPatch lands in the stored object; an update that changes nothing is still sent
to the webhooks (and refused by them); mutating webhooks see CONNECT (their patch changes an
exec's command) and DELETE (which they may not patch); each call is counted in /metrics; a
webhook that is down or too slow fails the write under failurePolicy Fail and is passed over
under Ignore; namespace and object selectors keep writes away from a webhook; a dry run
calls the webhooks and stores nothing; a subresource rule (``pods/status``) and a webhook
behind a Service (its Endpoints) are called; writes of the configurations themselves never
go to a webhook; invalid configurations are refused with 422 naming the field.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.conftest import RunningServer, served

Obj = dict[str, Any]
SLOW_SECONDS = 6.0


def make_certificate(tmp: Path, names: list[str]) -> tuple[bytes, Path, Path]:
    """A CA and a serving certificate for ``names`` (DNS names, and 127.0.0.1): (CA PEM,
    certificate file, key file)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(hours=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    tmp.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = tmp / "webhook.crt", tmp / "webhook.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca.public_bytes(serialization.Encoding.PEM), cert_path, key_path


class WebhookServer:
    """The webhooks, over HTTPS on loopback, on a loop of their own; every review is kept.

    ``/validate`` denies objects labelled ``forbidden: "true"`` and every CONNECT (403, a
    message) and warns otherwise; ``/mutate`` adds the label ``mutated-by: test-webhook``; ``/count`` counts its
    calls in the annotation ``webhook-calls``; ``/slow`` answers allowed after SLOW_SECONDS;
    ``/allow`` allows; ``/exec-command`` patches an exec's command to ``echo from-webhook``;
    ``/exec-check`` refuses an exec naming its command."""

    def __init__(self, tmp: Path, dns_names: list[str]) -> None:
        self.ca_pem, cert, key = make_certificate(tmp, dns_names)
        self.reviews: list[tuple[str, Obj]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="webhooks", daemon=True)
        self.thread.start()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.runner: web.AppRunner | None = None
        self.port = asyncio.run_coroutine_threadsafe(self._start(ctx), self.loop).result(30)

    async def _start(self, ctx: ssl.SSLContext) -> int:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        server = site._server
        assert server is not None and hasattr(server, "sockets")
        return int(server.sockets[0].getsockname()[1])

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        review = await request.json()
        self.reviews.append((path, review))
        req = review["request"]
        obj = req.get("object") or req.get("oldObject") or {}
        labels = (obj.get("metadata") or {}).get("labels") or {}
        resp: Obj = {"uid": req["uid"], "allowed": True}
        if path == "validate":
            if req["operation"] == "CONNECT":
                resp = {"uid": req["uid"], "allowed": False,
                        "status": {"code": 403, "reason": "Forbidden", "message": f"{obj['kind']} are not allowed"}}
            elif labels.get("forbidden") == "true":
                resp = {"uid": req["uid"], "allowed": False,
                        "status": {"code": 403, "reason": "Forbidden",
                                   "message": f"{req['resource']['resource']} labelled forbidden are not allowed"}}
            else:
                resp["warnings"] = ["checked by the test webhook"]
        elif path == "mutate":
            ops: list[Obj] = []
            if not (obj.get("metadata") or {}).get("labels"):
                ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
            ops.append({"op": "add", "path": "/metadata/labels/mutated-by", "value": "test-webhook"})
            resp["patchType"] = "JSONPatch"
            resp["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        elif path == "count":
            calls = int(((obj.get("metadata") or {}).get("annotations") or {}).get("webhook-calls", "0")) + 1
            ops = [{"op": "add", "path": "/metadata/annotations", "value": {"webhook-calls": str(calls)}}]
            resp["patchType"] = "JSONPatch"
            resp["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        elif path == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        elif path == "exec-command":  # a mutating webhook on CONNECT: what an exec runs
            ops = [{"op": "replace", "path": "/command", "value": ["echo", "from-webhook"]}]
            resp["patchType"] = "JSONPatch"
            resp["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        elif path == "exec-check":  # a validating webhook on CONNECT that names the command it refuses
            resp = {"uid": req["uid"], "allowed": False,
                    "status": {"code": 403, "reason": "Forbidden", "message": f"command {obj['command']} refused"}}
        return web.json_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})

    def seen(self, path: str) -> list[Obj]:
        return [r["request"] for p, r in list(self.reviews) if p == path]

    def close(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def free_port() -> int:
    """A loopback port nothing listens on (a webhook that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory.mktemp("webhooks-server"))


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookServer]:
    srv = WebhookServer(tmp_path_factory.mktemp("webhooks-tls"), ["hooks.webhooks-svc.svc"])
    try:
        yield srv
    finally:
        srv.close()


def kubectl(srv: RunningServer, *args: str, stdin: str | None = None, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["kubectl", "--kubeconfig", srv.kubeconfig, *args], input=stdin, capture_output=True,
                          text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc


@pytest.fixture
def ns(server: RunningServer) -> Iterator[str]:
    """A namespace of the test's, labelled so that the test's webhooks select it."""
    name = f"wh-{uuid.uuid4().hex[:8]}"
    kubectl(server, "create", "namespace", name)
    kubectl(server, "label", "namespace", name, f"webhook-test={name}")
    try:
        yield name
    finally:
        kubectl(server, "delete", "namespace", name, "--wait=false", check=False)


def webhook(name: str, client: Obj, ns: str, **extra: Any) -> Obj:
    hook: Obj = {
        "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None", "clientConfig": client,
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        "namespaceSelector": {"matchLabels": {"webhook-test": ns}},
    }
    hook.update(extra)
    return hook


def url_client(hooks: WebhookServer, path: str, port: int | None = None) -> Obj:
    return {"url": f"https://127.0.0.1:{port or hooks.port}/{path}",
            "caBundle": base64.b64encode(hooks.ca_pem).decode()}


class Registered:
    """A webhook configuration applied with kubectl, deleted on leaving."""

    def __init__(self, srv: RunningServer, kind: str, name: str, webhooks: list[Obj]) -> None:
        self.srv, self.kind, self.name = srv, kind, name
        self.doc: Obj = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
                    "webhooks": webhooks}

    def __enter__(self) -> Registered:
        kubectl(self.srv, "apply", "-f", "-", stdin=json.dumps(self.doc))
        return self

    def __exit__(self, *exc: object) -> None:
        kubectl(self.srv, "delete", self.kind.lower(), self.name, "--ignore-not-found", check=False)


def post(srv: RunningServer, path: str, doc: Obj) -> tuple[int, Obj]:
    """POST ``doc`` as the kubeconfig's user: (HTTP status, the answer)."""
    config = yaml.safe_load(Path(srv.kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    token = config["users"][0]["user"]["token"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    req = urllib.request.Request(cluster["server"] + path, data=json.dumps(doc).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def pod(name: str, labels: dict[str, str] | None = None) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}]}})


def create_pod(srv: RunningServer, ns: str, name: str, labels: dict[str, str] | None = None,
               *flags: str) -> subprocess.CompletedProcess[str]:
    return kubectl(srv, "-n", ns, "create", *flags, "-f", "-", "-o", "json", stdin=pod(name, labels), check=False)


def until(what: str, cond: Any, within: float = 15.0) -> Any:
    """Poll ``cond`` until it returns something true (a configuration takes effect once the
    server's watch cache has seen it: a moment, as upstream's informer)."""
    deadline = time.monotonic() + within
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_validating_webhook_denies_with_its_message(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    with Registered(server, "ValidatingWebhookConfiguration", "deny.webhooks.test",
                    [webhook("deny.webhooks.test", url_client(hooks, "validate"), ns)]):
        tried: list[str] = []

        def refused() -> subprocess.CompletedProcess[str] | None:
            tried.append(f"bad-{len(tried)}")
            done = create_pod(server, ns, tried[-1], {"forbidden": "true"})
            return done if done.returncode else None

        denied = until("the webhook to deny", refused)
        assert ('Error from server (Forbidden): error when creating "STDIN": admission webhook '
                '"deny.webhooks.test" denied the request: pods labelled forbidden are not allowed') \
            in denied.stderr, denied.stderr
        allowed = create_pod(server, ns, "good", {"app": "x"})
        assert allowed.returncode == 0, allowed.stderr
        assert "Warning: checked by the test webhook" in allowed.stderr
        review = next(r for r in hooks.seen("validate") if r.get("name") == "good")
        assert review["operation"] == "CREATE" and review["namespace"] == ns
        assert review["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
        assert review["resource"] == {"group": "", "version": "v1", "resource": "pods"}
        assert review["requestKind"] == review["kind"] and review["dryRun"] is False
        assert review["object"]["metadata"]["labels"] == {"app": "x"} and review["oldObject"] is None
        assert review["options"]["kind"] == "CreateOptions" and uuid.UUID(review["uid"])
        assert review["userInfo"]["username"] == "admin" or "system:masters" in review["userInfo"]["groups"]
        # Stored when allowed, not when denied (a try before the configuration took effect was
        # allowed: only the last one is known to be refused).
        stored = kubectl(server, "-n", ns, "get", "pods", "-o", "name").stdout.split()
        assert "pod/good" in stored and f"pod/{tried[-1]}" not in stored, stored


def test_mutating_webhook_patches_the_object(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    with Registered(server, "MutatingWebhookConfiguration", "label.webhooks.test",
                    [webhook("label.webhooks.test", url_client(hooks, "mutate"), ns)]):
        def labelled() -> Obj | None:
            name = f"p-{time.monotonic_ns()}"
            done = create_pod(server, ns, name)
            assert done.returncode == 0, done.stderr
            got = json.loads(done.stdout)
            return got if (got["metadata"].get("labels") or {}).get("mutated-by") == "test-webhook" else None

        created = until("the mutating webhook to label a pod", labelled)
        stored = json.loads(kubectl(server, "-n", ns, "get", "pod", created["metadata"]["name"], "-o", "json").stdout)
        assert stored["metadata"]["labels"] == {"mutated-by": "test-webhook"}
        assert stored["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_reinvocation_if_needed(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    """Configurations are called in name order; an IfNeeded webhook is called again when a
    later one changed the object, a Never one is not."""
    def calls(policy: str) -> str:
        with Registered(server, "MutatingWebhookConfiguration", "a-count.webhooks.test",
                        [webhook("count.webhooks.test", url_client(hooks, "count"), ns, reinvocationPolicy=policy)]), \
             Registered(server, "MutatingWebhookConfiguration", "b-label.webhooks.test",
                        [webhook("label.webhooks.test", url_client(hooks, "mutate"), ns)]):
            def both() -> Obj | None:
                done = create_pod(server, ns, f"r-{time.monotonic_ns()}")
                assert done.returncode == 0, done.stderr
                got: Obj = json.loads(done.stdout)["metadata"]
                return got if "mutated-by" in (got.get("labels") or {}) and got.get("annotations") else None

            return str(until("both webhooks to act", both)["annotations"]["webhook-calls"])

    assert calls("IfNeeded") == "2"
    assert calls("Never") == "1"


def test_updates_and_deletes(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    """A mutating webhook on UPDATE patches an update (kubectl annotate); a validating one on
    DELETE is sent the object being deleted as oldObject and can refuse the deletion."""
    made = create_pod(server, ns, "kept", {"forbidden": "true"})
    assert made.returncode == 0, made.stderr
    update = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["pods"]}]
    delete = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["pods"]}]
    with Registered(server, "MutatingWebhookConfiguration", "on-update.webhooks.test",
                    [webhook("on-update.webhooks.test", url_client(hooks, "mutate"), ns, rules=update)]), \
         Registered(server, "ValidatingWebhookConfiguration", "on-delete.webhooks.test",
                    [webhook("on-delete.webhooks.test", url_client(hooks, "validate"), ns, rules=delete)]):
        def labelled() -> bool:
            kubectl(server, "-n", ns, "annotate", "pod", "kept", f"n={time.monotonic_ns()}", "--overwrite")
            got = json.loads(kubectl(server, "-n", ns, "get", "pod", "kept", "-o", "json").stdout)
            return got["metadata"]["labels"].get("mutated-by") == "test-webhook"

        until("the update to be patched", labelled)
        review = [r for r in hooks.seen("mutate") if r.get("name") == "kept"][-1]
        assert review["operation"] == "UPDATE" and review["options"]["kind"] == "UpdateOptions"
        assert "mutated-by" not in review["oldObject"]["metadata"]["labels"] or \
            review["object"]["metadata"]["annotations"] != review["oldObject"]["metadata"]["annotations"]
        refused = until("the deletion to be refused", lambda: (p := kubectl(
            server, "-n", ns, "delete", "pod", "kept", "--wait=false", check=False)).returncode and p)
        assert 'admission webhook "on-delete.webhooks.test" denied the request' in refused.stderr, refused.stderr
        review = [r for r in hooks.seen("validate") if r.get("name") == "kept"][-1]
        assert review["operation"] == "DELETE" and review["object"] is None
        assert review["oldObject"]["metadata"]["name"] == "kept" and review["options"]["kind"] == "DeleteOptions"
    assert kubectl(server, "-n", ns, "delete", "pod", "kept", "--wait=false").returncode == 0


def test_deletes_that_wait_for_finalizers(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    """A DELETE that only marks the object (a finalizer holds it) is sent to the webhooks and
    can be refused; the removal once the last finalizer is gone is an update's, not sent."""
    delete = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["configmaps"]}]
    for name, labels in (("held-bad", {"forbidden": "true"}), ("held-ok", {})):
        kubectl(server, "-n", ns, "create", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels, "finalizers": ["example.com/hold"]}}))
    with Registered(server, "ValidatingWebhookConfiguration", "cm-delete.webhooks.test",
                    [webhook("cm-delete.webhooks.test", url_client(hooks, "validate"), ns, rules=delete)]):
        refused = until("the marking delete to be refused", lambda: (p := kubectl(
            server, "-n", ns, "delete", "configmap", "held-bad", "--wait=false", check=False)).returncode and p)
        assert 'admission webhook "cm-delete.webhooks.test" denied the request' in refused.stderr, refused.stderr
        got = json.loads(kubectl(server, "-n", ns, "get", "configmap", "held-bad", "-o", "json").stdout)
        assert "deletionTimestamp" not in got["metadata"]
        kubectl(server, "-n", ns, "delete", "configmap", "held-ok", "--wait=false")
        assert len([r for r in hooks.seen("validate") if r.get("name") == "held-ok"]) == 1
        kubectl(server, "-n", ns, "patch", "configmap", "held-ok", "--type=merge", "-p",
                '{"metadata":{"finalizers":null}}')
        until("held-ok to go", lambda: kubectl(server, "-n", ns, "get", "configmap", "held-ok",
                                               check=False).returncode)
        assert len([r for r in hooks.seen("validate") if r.get("name") == "held-ok"]) == 1
    kubectl(server, "-n", ns, "patch", "configmap", "held-bad", "--type=merge", "-p",
            '{"metadata":{"finalizers":null}}')


def test_failure_policy_when_the_webhook_is_down(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    down = url_client(hooks, "validate", port=free_port())
    with Registered(server, "ValidatingWebhookConfiguration", "down-ignore.webhooks.test",
                    [webhook("down-ignore.webhooks.test", down, ns, failurePolicy="Ignore")]):
        ok = create_pod(server, ns, "ignored")
        assert ok.returncode == 0, ok.stderr
    with Registered(server, "ValidatingWebhookConfiguration", "down-fail.webhooks.test",
                    [webhook("down-fail.webhooks.test", down, ns, failurePolicy="Fail")]):
        refused = until("the Fail webhook to refuse", lambda: (p := create_pod(
            server, ns, f"f-{time.monotonic_ns()}")).returncode and p)
        assert "Error from server (InternalError)" in refused.stderr, refused.stderr
        assert 'Internal error occurred: failed calling webhook "down-fail.webhooks.test": failed to call webhook: ' \
               'Post "https://127.0.0.1:' in refused.stderr, refused.stderr


def test_timeout_seconds(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    slow = url_client(hooks, "slow")
    with Registered(server, "ValidatingWebhookConfiguration", "slow.webhooks.test",
                    [webhook("slow.webhooks.test", slow, ns, timeoutSeconds=1)]):
        start = time.monotonic()
        refused = until("the slow webhook to time out", lambda: (p := create_pod(
            server, ns, f"s-{time.monotonic_ns()}")).returncode and p, within=30)
        assert time.monotonic() - start < SLOW_SECONDS + 10
        assert 'failed calling webhook "slow.webhooks.test"' in refused.stderr, refused.stderr
        assert "?timeout=1s\": context deadline exceeded" in refused.stderr, refused.stderr
    with Registered(server, "ValidatingWebhookConfiguration", "slow-ignore.webhooks.test",
                    [webhook("slow-ignore.webhooks.test", slow, ns, timeoutSeconds=1, failurePolicy="Ignore")]):
        start = time.monotonic()
        ok = create_pod(server, ns, "slow-but-ignored")
        assert ok.returncode == 0, ok.stderr
        assert time.monotonic() - start < SLOW_SECONDS  # the answer did not wait for the webhook


def test_selectors_keep_writes_away(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    other = f"wh-other-{uuid.uuid4().hex[:6]}"
    kubectl(server, "create", "namespace", other)
    marker = uuid.uuid4().hex[:8]
    try:
        with Registered(server, "ValidatingWebhookConfiguration", "selective.webhooks.test",
                        [webhook("selective.webhooks.test", url_client(hooks, "validate"), ns,
                                 objectSelector={"matchLabels": {"checked": marker}})]):
            until("the webhook to deny a selected pod", lambda: create_pod(
                server, ns, f"sel-{time.monotonic_ns()}", {"forbidden": "true", "checked": marker}).returncode)
            before = len(hooks.seen("validate"))
            # Not selected by the object selector: not sent, so not denied.
            unselected = create_pod(server, ns, "unselected", {"forbidden": "true"})
            assert unselected.returncode == 0, unselected.stderr
            # A namespace the namespace selector does not select.
            elsewhere = create_pod(server, other, "elsewhere", {"forbidden": "true", "checked": marker})
            assert elsewhere.returncode == 0, elsewhere.stderr
            assert len(hooks.seen("validate")) == before
    finally:
        kubectl(server, "delete", "namespace", other, "--wait=false", check=False)


def test_dry_run_calls_webhooks_and_stores_nothing(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    with Registered(server, "ValidatingWebhookConfiguration", "dry-deny.webhooks.test",
                    [webhook("dry-deny.webhooks.test", url_client(hooks, "validate"), ns,
                             sideEffects="NoneOnDryRun")]), \
         Registered(server, "MutatingWebhookConfiguration", "dry-label.webhooks.test",
                    [webhook("dry-label.webhooks.test", url_client(hooks, "mutate"), ns)]):
        denied = until("the webhook to deny a dry run", lambda: (p := create_pod(
            server, ns, "dry-bad", {"forbidden": "true"}, "--dry-run=server")).returncode and p)
        assert 'admission webhook "dry-deny.webhooks.test" denied the request' in denied.stderr, denied.stderr
        ok = until("the dry run to be labelled", lambda: (p := create_pod(
            server, ns, "dry-good", {}, "--dry-run=server")).returncode == 0
            and "mutated-by" in json.loads(p.stdout)["metadata"].get("labels", {}) and p)
        assert json.loads(ok.stdout)["metadata"]["labels"] == {"mutated-by": "test-webhook"}
        reviews = [r for r in hooks.seen("validate") if r.get("name") == "dry-good"]
        assert reviews and all(r["dryRun"] is True and r["options"]["dryRun"] == ["All"] for r in reviews)
        assert kubectl(server, "-n", ns, "get", "pods", "-o", "name").stdout.strip() == ""


def test_subresource_rules_and_service_webhooks(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    """A rule for ``pods/status`` (UPDATE) called at a Service's ready endpoint, its
    certificate verified for ``hooks.webhooks-svc.svc``; writes of pods themselves are not."""
    svc_ns = "webhooks-svc"
    kubectl(server, "create", "namespace", svc_ns, check=False)
    kubectl(server, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hooks", "namespace": svc_ns},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": hooks.port}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "hooks", "namespace": svc_ns},
         "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": hooks.port}]}]},
    ]}))
    client = {"service": {"namespace": svc_ns, "name": "hooks", "path": "/validate"},
              "caBundle": base64.b64encode(hooks.ca_pem).decode()}
    rules = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["pods/status"]}]
    try:
        made = create_pod(server, ns, "target", {"forbidden": "true"})
        assert made.returncode == 0, made.stderr
        with Registered(server, "ValidatingWebhookConfiguration", "status.webhooks.test",
                        [webhook("status.webhooks.test", client, ns, rules=rules)]):
            patch = json.dumps({"status": {"message": f"m-{time.monotonic_ns()}"}})
            denied = until("the status webhook to deny", lambda: (p := kubectl(
                server, "-n", ns, "patch", "pod", "target", "--subresource=status", "--type=merge", "-p", patch,
                check=False)).returncode and p)
            assert 'admission webhook "status.webhooks.test" denied the request: pods labelled forbidden' \
                in denied.stderr, denied.stderr
            review = hooks.seen("validate")[-1]
            assert review["subResource"] == "status" and review["operation"] == "UPDATE"
            assert review["oldObject"]["metadata"]["name"] == "target"
            # The pod itself (no subresource) is not matched by pods/status.
            kubectl(server, "-n", ns, "label", "pod", "target", "more=yes")
    finally:
        kubectl(server, "delete", "namespace", svc_ns, "--wait=false", check=False)


def hpa(name: str) -> str:
    return json.dumps({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": {"forbidden": "true"}},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 60}}}]}})


def test_match_policy_equivalent_sends_the_version_the_rule_names(server: RunningServer, hooks: WebhookServer,
                                                                  ns: str) -> None:
    """A rule for autoscaling/v1 catches an autoscaling/v2 write (Equivalent, the default),
    sent as v1; with Exact it does not."""
    rules = [{"apiGroups": ["autoscaling"], "apiVersions": ["v1"], "operations": ["CREATE"],
              "resources": ["horizontalpodautoscalers"]}]
    with Registered(server, "ValidatingWebhookConfiguration", "exact.webhooks.test",
                    [webhook("exact.webhooks.test", url_client(hooks, "validate"), ns, rules=rules,
                             matchPolicy="Exact")]):
        time.sleep(1)  # the configuration is in the server's cache (nothing to poll for: it must not act)
        made = kubectl(server, "-n", ns, "create", "-f", "-", stdin=hpa("exact"), check=False)
        assert made.returncode == 0, made.stderr
    with Registered(server, "ValidatingWebhookConfiguration", "equivalent.webhooks.test",
                    [webhook("equivalent.webhooks.test", url_client(hooks, "validate"), ns, rules=rules)]):
        denied = until("the v1 rule to catch a v2 write", lambda: (p := kubectl(
            server, "-n", ns, "create", "-f", "-", stdin=hpa(f"h{time.monotonic_ns()}"), check=False))
            .returncode and p)
        assert 'admission webhook "equivalent.webhooks.test" denied the request: horizontalpodautoscalers ' \
               "labelled forbidden" in denied.stderr, denied.stderr
        review = hooks.seen("validate")[-1]
        assert review["kind"] == {"group": "autoscaling", "version": "v1", "kind": "HorizontalPodAutoscaler"}
        assert review["requestKind"]["version"] == "v2"
        assert review["object"]["apiVersion"] == "autoscaling/v1"
        assert review["object"]["spec"]["targetCPUUtilizationPercentage"] == 60


def test_connect_exec_is_sent_to_webhooks(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    """A rule for CONNECT on pods/exec: ``kubectl exec`` is refused before anything reaches a
    node, with the webhook's words; the review carries the PodExecOptions."""
    made = create_pod(server, ns, "shell")
    assert made.returncode == 0, made.stderr
    rules = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CONNECT"], "resources": ["pods/exec"]}]
    with Registered(server, "ValidatingWebhookConfiguration", "exec.webhooks.test",
                    [webhook("exec.webhooks.test", url_client(hooks, "validate"), ns, rules=rules)]):
        refused = until("the exec to be refused by the webhook", lambda: (p := kubectl(
            server, "-n", ns, "exec", "shell", "--", "true", check=False)).returncode
            and "denied the request" in p.stderr and p)
        assert 'admission webhook "exec.webhooks.test" denied the request: PodExecOptions are not allowed' \
            in refused.stderr, refused.stderr
        review = hooks.seen("validate")[-1]
        assert review["operation"] == "CONNECT" and review["subResource"] == "exec"
        assert review["kind"] == {"group": "", "version": "v1", "kind": "PodExecOptions"}
        assert review["resource"] == {"group": "", "version": "v1", "resource": "pods"}
        assert review["object"]["command"] == ["true"] and review["object"]["container"] == "c"
        assert "options" not in review


def test_configurations_are_never_sent_to_webhooks(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    """A webhook refusing every write of everything (and down) still lets its own
    configuration be changed and removed: upstream exempts the admissionregistration kinds."""
    client = url_client(hooks, "validate", port=free_port())
    everything = [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*/*"]}]
    hook = webhook("all.webhooks.test", client, "", rules=everything, namespaceSelector={})
    reg = Registered(server, "ValidatingWebhookConfiguration", "all.webhooks.test", [hook])
    with reg:
        until("the webhook to refuse a ConfigMap", lambda: kubectl(
            server, "-n", ns, "create", "configmap", f"c{time.monotonic_ns()}", check=False).returncode)
        reg.doc["webhooks"][0]["timeoutSeconds"] = 3
        kubectl(server, "apply", "-f", "-", stdin=json.dumps(reg.doc))
        kubectl(server, "delete", "validatingwebhookconfiguration", "all.webhooks.test")
    rows = kubectl(server, "get", "validatingwebhookconfigurations", "-o", "name").stdout.split()
    assert "validatingwebhookconfiguration.admissionregistration.k8s.io/all.webhooks.test" not in rows


BAD = [
    ({"name": "short"}, 'webhooks[0].name: Invalid value: "short": should be a domain with at least three '
                        "segments separated by dots"),
    ({"sideEffects": "Some"}, 'webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", '
                              '"NoneOnDryRun"'),
    ({"sideEffects": None}, "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"),
    ({"admissionReviewVersions": None},
     "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1"),
    ({"clientConfig": {"url": "http://127.0.0.1/x", "service": {"namespace": "a", "name": "b"}}},
     "webhooks[0].clientConfig: Required value: exactly one of url or service is required"),
    ({"clientConfig": {"url": "http://127.0.0.1/x"}},
     "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; "
     "desired format: https://host[/path]"),
    ({"timeoutSeconds": 31},
     "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds"),
    ({"failurePolicy": "Maybe"},
     'webhooks[0].failurePolicy: Unsupported value: "Maybe": supported values: "Fail", "Ignore"'),
    ({"rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["PATCH"], "resources": ["pods"]}]},
     'webhooks[0].rules[0].operations[0]: Unsupported value: "PATCH"'),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_invalid_configurations_are_refused(server: RunningServer, change: Obj, message: str) -> None:
    hook = webhook("bad.webhooks.test", {"url": "https://127.0.0.1:1/x"}, "nowhere")
    for key, value in change.items():
        if value is None:
            hook.pop(key)
        else:
            hook[key] = value
    doc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": "bad.webhooks.test"}, "webhooks": [hook]}
    refused = kubectl(server, "create", "-f", "-", stdin=json.dumps(doc), check=False)
    assert refused.returncode != 0
    assert 'The ValidatingWebhookConfiguration "bad.webhooks.test" is invalid' in refused.stderr, refused.stderr
    assert message in refused.stderr, refused.stderr


def test_duplicate_names_and_defaults(server: RunningServer) -> None:
    hook = webhook("twice.webhooks.test", {"url": "https://127.0.0.1:1/x"}, "nowhere")
    doc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
           "metadata": {"name": "twice.webhooks.test"}, "webhooks": [hook, hook]}
    code, status = post(server, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", doc)
    assert code == 422 and status["code"] == 422 and status["reason"] == "Invalid", status
    assert status["details"]["causes"][0]["field"] == "webhooks[1].name", status
    assert 'webhooks[1].name: Duplicate value: "twice.webhooks.test"' in status["message"]
    doc["webhooks"] = [hook]
    made = json.loads(kubectl(server, "create", "-f", "-", "-o", "json", stdin=json.dumps(doc)).stdout)
    try:
        got = made["webhooks"][0]
        assert (got["failurePolicy"], got["matchPolicy"], got["timeoutSeconds"], got["reinvocationPolicy"]) == \
            ("Fail", "Equivalent", 10, "Never")
        assert got["objectSelector"] == {} and got["rules"][0]["scope"] == "*"
        listed = kubectl(server, "get", "mutatingwebhookconfigurations").stdout.split()
        assert listed[:3] == ["NAME", "WEBHOOKS", "AGE"] and "twice.webhooks.test" in listed
    finally:
        kubectl(server, "delete", "mutatingwebhookconfiguration", "twice.webhooks.test", check=False)


def test_a_no_op_update_is_admitted_first(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    """As upstream, admission runs before the store finds that nothing changed: a PUT of the
    stored object reaches the webhooks (and is refused by one), and writes nothing."""
    assert create_pod(server, ns, "same").returncode == 0
    assert create_pod(server, ns, "same-forbidden", {"forbidden": "true"}).returncode == 0
    update = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["pods"]}]
    with Registered(server, "ValidatingWebhookConfiguration", "noop.webhooks.test",
                    [webhook("noop.webhooks.test", url_client(hooks, "validate"), ns, rules=update)]):
        def replaced(name: str) -> subprocess.CompletedProcess[str]:
            stored = kubectl(server, "-n", ns, "get", "pod", name, "-o", "json").stdout
            return kubectl(server, "-n", ns, "replace", "-f", "-", "-o", "json", stdin=stored, check=False)

        refused = until("the no-op update to be refused", lambda: (p := replaced("same-forbidden")).returncode and p)
        assert 'admission webhook "noop.webhooks.test" denied the request: pods labelled forbidden are not allowed' \
            in refused.stderr, refused.stderr
        before = json.loads(kubectl(server, "-n", ns, "get", "pod", "same", "-o", "json").stdout)
        calls = len([r for r in hooks.seen("validate") if r.get("name") == "same"])
        done = replaced("same")
        assert done.returncode == 0, done.stderr
        assert "checked by the test webhook" in done.stderr  # its warning: it was asked
        assert json.loads(done.stdout)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        reviews = [r for r in hooks.seen("validate") if r.get("name") == "same"]
        assert len(reviews) == calls + 1 and reviews[-1]["operation"] == "UPDATE"
        assert reviews[-1]["object"] == reviews[-1]["oldObject"]


def test_mutating_webhooks_see_connect_and_delete(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    """Upstream calls mutating webhooks on CONNECT (a patch changes the exec's options, which the
    validating webhooks then see) and on DELETE (a patch there fails the deletion)."""
    assert create_pod(server, ns, "shell").returncode == 0
    connect = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CONNECT"], "resources": ["pods/exec"]}]
    with Registered(server, "MutatingWebhookConfiguration", "exec-mutate.webhooks.test",
                    [webhook("exec-mutate.webhooks.test", url_client(hooks, "exec-command"), ns, rules=connect)]), \
         Registered(server, "ValidatingWebhookConfiguration", "exec-check.webhooks.test",
                    [webhook("exec-check.webhooks.test", url_client(hooks, "exec-check"), ns, rules=connect)]):
        refused = until("the exec to be patched, then refused", lambda: (p := kubectl(
            server, "-n", ns, "exec", "shell", "--", "true", check=False)).returncode
            and "from-webhook" in p.stderr and p)
        assert "admission webhook \"exec-check.webhooks.test\" denied the request: command ['echo', " \
            "'from-webhook'] refused" in refused.stderr, refused.stderr
        review = [r for r in hooks.seen("exec-command") if r.get("name") == "shell"][-1]
        assert review["operation"] == "CONNECT" and review["kind"]["kind"] == "PodExecOptions"
        assert review["object"]["command"] == ["true"]
    delete = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["pods"]}]
    with Registered(server, "MutatingWebhookConfiguration", "delete-patch.webhooks.test",
                    [webhook("delete-patch.webhooks.test", url_client(hooks, "count"), ns, rules=delete)]):
        refused = until("the deletion to be refused", lambda: (p := kubectl(
            server, "-n", ns, "delete", "pod", "shell", "--wait=false", check=False)).returncode and p)
        assert 'admission webhook "delete-patch.webhooks.test" attempted to modify the object, which is not ' \
            "supported for this operation" in refused.stderr, refused.stderr
    with Registered(server, "MutatingWebhookConfiguration", "delete-allow.webhooks.test",
                    [webhook("delete-allow.webhooks.test", url_client(hooks, "allow"), ns, rules=delete)]):
        until("the mutating webhook to see the deletion", lambda: kubectl(
            server, "-n", ns, "delete", "pod", "shell", "--wait=false", check=False).returncode == 0
            and any(r.get("name") == "shell" for r in hooks.seen("allow")))
        review = [r for r in hooks.seen("allow") if r.get("name") == "shell"][-1]
        assert review["operation"] == "DELETE" and review["object"] is None
        assert review["oldObject"]["metadata"]["name"] == "shell"


def metric_samples(srv: RunningServer) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = kubectl(srv, "get", "--raw", "/metrics").stdout
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        pairs = dict(p.split("=", 1) for p in labels.rstrip("}").split(",") if p) if labels else {}
        out.setdefault(name, []).append(({k: v.strip('"') for k, v in pairs.items()}, float(value)))
    return out


def metric(samples: dict[str, list[tuple[dict[str, str], float]]], family: str, /, **labels: str) -> float:
    return sum(v for got, v in samples.get(family, []) if all(got.get(k) == w for k, w in labels.items()))


def test_webhook_metrics(server: RunningServer, hooks: WebhookServer, ns: str) -> None:
    """kube-apiserver's admission webhook and step metrics, labelled as upstream labels them."""
    down = url_client(hooks, "validate", port=free_port())
    with Registered(server, "MutatingWebhookConfiguration", "m-mutate.webhooks.test",
                    [webhook("m-mutate.webhooks.test", url_client(hooks, "mutate"), ns)]), \
         Registered(server, "ValidatingWebhookConfiguration", "m-deny.webhooks.test",
                    [webhook("m-deny.webhooks.test", url_client(hooks, "validate"), ns),
                     webhook("m-open.webhooks.test", down, ns, failurePolicy="Ignore")]):
        until("the webhooks to act", lambda: (p := create_pod(server, ns, f"m-{time.monotonic_ns()}")).returncode == 0
              and "mutated-by" in p.stdout)
        refused = create_pod(server, ns, "m-refused", {"forbidden": "true"})
        assert refused.returncode != 0
    with Registered(server, "ValidatingWebhookConfiguration", "m-closed.webhooks.test",
                    [webhook("m-closed.webhooks.test", down, ns, failurePolicy="Fail")]):
        until("the Fail webhook to refuse", lambda: create_pod(server, ns, f"c-{time.monotonic_ns()}").returncode)
    got = metric_samples(server)
    assert metric(got, "apiserver_admission_webhook_request_total", name="m-mutate.webhooks.test", type="admit",
                  operation="CREATE", code="200", rejected="false") >= 1
    assert metric(got, "apiserver_admission_webhook_admission_duration_seconds_count",
                  name="m-mutate.webhooks.test", type="admit", operation="CREATE", rejected="false") >= 1
    assert metric(got, "apiserver_admission_webhook_request_total", name="m-deny.webhooks.test",
                  type="validating", operation="CREATE", code="403", rejected="true") == 1
    assert metric(got, "apiserver_admission_webhook_rejection_count", name="m-deny.webhooks.test",
                  type="validating", operation="CREATE", error_type="no_error", rejection_code="403") == 1
    assert metric(got, "apiserver_admission_webhook_fail_open_count", name="m-open.webhooks.test",
                  type="validating") >= 1
    assert metric(got, "apiserver_admission_webhook_request_total", name="m-open.webhooks.test",
                  code="503", rejected="false") >= 1
    assert metric(got, "apiserver_admission_webhook_rejection_count", name="m-closed.webhooks.test",
                  type="validating", error_type="calling_webhook_error", rejection_code="503") >= 1
    assert metric(got, "apiserver_admission_webhook_admission_duration_seconds_bucket",
                  name="m-closed.webhooks.test", rejected="true", le="+Inf") >= 1
    assert metric(got, "apiserver_admission_step_admission_duration_seconds_count", type="admit",
                  operation="CREATE", rejected="false") >= 1
    assert metric(got, "apiserver_admission_step_admission_duration_seconds_count", type="validate",
                  operation="CREATE", rejected="true") >= 2
