"""Ingress end to end on the multi-node harness: real nginx on every node, requests with curl
from the client namespace (a user outside the cluster), certificates made here.

Three small web applications (``web`` with two pods, ``api``, ``other``) answer with their
name, the path and the headers they got. Covers: host and path routing with every path type
and Kubernetes' precedence on every node's address, wildcard hosts, the default backend and
404 for unknown hosts, the client's address in X-Forwarded-For / X-Real-IP, status ADDRESS
and the default IngressClass, Ingresses of another class left alone; TLS with SNI for two
hosts verified by the client, the HTTP to HTTPS redirect (and ``ssl-redirect: "false"``), a
Secret rotated and then broken (event, the last good certificate kept); a missing Service and
a Service without endpoints (503, other routes unharmed), conflicting rules (older wins,
event), unknown annotations (event), a configuration nginx refuses (event, the previous one
kept, other changes still applied); an Ingress edited, a backend scaled without a reload, an
agent killed and restarted without dropping a request (nginx adopted); 422 for bad input;
``bosun service create --ingress-host`` (and ``service rm``).
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.e2e.helpers import BOSUN
from tests.harness import NetCluster
from tests.harness.fixtures import requires_netns

pytestmark = [pytest.mark.timeout(300), requires_netns]

NS = "ing"
SERVER = """
import http.server, json, os, socket
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"app": os.environ["APP"], "pod": socket.gethostname(), "path": self.path,
                           "host": self.headers.get("Host"), "xff": self.headers.get("X-Forwarded-For"),
                           "xri": self.headers.get("X-Real-IP")}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"""


def deployment(app: str, replicas: int) -> dict[str, Any]:
    labels = {"app": app}
    container = {"name": app, "image": "host", "command": ["python3", "-c", SERVER],
                 "env": [{"name": "APP", "value": app}], "ports": [{"containerPort": 8080}],
                 "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}}}}


def service(name: str, app: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def backend(svc: str, port: int | str = 80) -> dict[str, Any]:
    return {"service": {"name": svc, "port": {"number": port} if isinstance(port, int) else {"name": port}}}


def path(p: str, ptype: str, svc: str, port: int | str = 80) -> dict[str, Any]:
    return {"path": p, "pathType": ptype, "backend": backend(svc, port)}


def ingress(name: str, rules: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", None)
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": {**({"rules": rules} if rules else {}), **spec}}


def rule(host: str, *paths: dict[str, Any]) -> dict[str, Any]:
    return {**({"host": host} if host else {}), "http": {"paths": list(paths)}}


def certificate(host: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``host`` (its own CA for the client): (cert PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def tls_secret(name: str, cert: bytes, key: bytes | None) -> dict[str, Any]:
    data = {"tls.crt": base64.b64encode(cert).decode()}
    if key is not None:
        data["tls.key"] = base64.b64encode(key).decode()
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
            "type": "kubernetes.io/tls" if key is not None else "Opaque", "data": data}


class Ingresses:
    """The cluster and helpers to reach it from the client namespace."""

    def __init__(self, net: NetCluster, tmp: Path) -> None:
        self.net = net
        self.tmp = tmp

    def apply(self, *objs: dict[str, Any]) -> None:
        done = self.net.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                       "items": list(objs)}))
        assert done.returncode == 0, done.stderr

    def k(self, *args: str) -> str:
        done = self.net.kubectl("-n", NS, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def curl(self, url: str, host: str = "", *, ip: str = "", cacert: Path | None = None) -> tuple[int, str]:
        """(HTTP status, body) of one request from outside the cluster to node ``ip`` (n1)."""
        ip = ip or self.net.nodes[0].ip
        args = ["curl", "-s", "-m", "5", "-o", "/dev/stdout", "-w", "\n%{http_code}"]
        if url.startswith("https://"):
            args += ["--resolve", f"{host}:443:{ip}", "--cacert", str(cacert)] if cacert else \
                ["--resolve", f"{host}:443:{ip}", "-k"]
            target = url.replace("https://", f"https://{host}")
        else:
            args += ["-H", f"Host: {host}"] if host else []
            target = url.replace("http://", f"http://{ip}")
        done = self.net.sh(self.net.client_ns, *args, target, timeout=15)
        body, _, code = done.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), (body if done.returncode == 0 else f"curl exit {done.returncode}")

    def app(self, url: str, host: str = "", **kw: Any) -> str:
        code, body = self.curl(url, host, **kw)
        return str(json.loads(body)["app"]) if code == 200 and body.startswith("{") else f"{code}"

    def wait(self, what: str, check: Callable[[], Any], within: float = 30) -> Any:
        deadline = time.monotonic() + within
        last = None
        while True:
            last = check()
            if last:
                return last
            assert time.monotonic() < deadline, f"timed out waiting for {what} (last: {last!r})"
            time.sleep(0.3)

    def answers(self, url: str, host: str, want: str, **kw: Any) -> None:
        self.wait(f"{host}{url} -> {want}", lambda: self.app(url, host, **kw) == want)

    def events(self, name: str) -> list[tuple[str, str]]:
        items = json.loads(self.k("get", "events", "-o", "json"))["items"]
        return [(e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]

    def event(self, name: str, reason: str) -> str:
        return str(self.wait(f"{reason} event on {name}",
                             lambda: next((m for r, m in self.events(name) if r == reason), "")))

    def ready(self, svc: str) -> int:
        subsets = json.loads(self.k("get", "endpoints", svc, "-o", "json")).get("subsets") or []
        return sum(len(s.get("addresses") or []) for s in subsets)

    def master_and_workers(self, node: int = 0) -> tuple[int, set[int]]:
        pid_file = self.net.nodes[node].data_dir / "network" / "ingress" / "nginx.pid"
        master = int(pid_file.read_text())
        workers = {int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()}
        return master, workers


@pytest.fixture(scope="module")
def netcluster() -> Iterator[NetCluster]:
    """This module's own cluster, with a long node grace: the agent SIGKILL test below may
    take longer than the harness's 4 s to restart on a loaded machine, and the node lifecycle
    would then evict the pods the test keeps using (as tests/e2e/test_service_proxy.py)."""
    with NetCluster(nodes=3, node_monitor_grace_period=30.0, pod_eviction_timeout=60.0) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def ing(netcluster: NetCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingresses]:
    assert netcluster.kubectl("create", "namespace", NS).returncode == 0
    try:
        c = Ingresses(netcluster, tmp_path_factory.mktemp("ingress"))
        c.apply(deployment("web", 2), deployment("api", 1), deployment("other", 1),
                service("web", "web"), service("api", "api"), service("other", "other"), service("empty", "none"))
        want = {"web": 2, "api": 1, "other": 1}
        c.wait("the applications' endpoints", lambda: all(c.ready(app) == n for app, n in want.items()), within=90)
        yield c
    finally:
        netcluster.kubectl("delete", "namespace", NS, "--wait=false")


def test_host_and_path_routing_default_backend_and_status(ing: Ingresses) -> None:
    net = ing.net
    cls = net.kubectl_json("get", "ingressclass", "bosun")
    assert cls["spec"]["controller"] == "bosun.dev/ingress-nginx"
    assert cls["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"
    ing.apply(ingress("shop", [
        rule("shop.test", path("/api", "Prefix", "api", "http"), path("/exact", "Exact", "api"),
             path("/", "Prefix", "web"), path("/legacy", "ImplementationSpecific", "other")),
        rule("*.wild.test", path("/", "Prefix", "other"))]),
        ingress("elsewhere", [rule("else.test", path("/", "Prefix", "web"))], ingressClassName="someone-else"))
    ing.answers("http:///api", "shop.test", "api")
    for node in net.nodes:  # every node answers, whichever runs the pods
        ing.answers("http:///api/v1/x", "shop.test", "api", ip=node.ip)
    assert ing.app("http:///apix", "shop.test") == "web"  # Prefix matches whole path elements
    assert ing.app("http:///exact", "shop.test") == "api"
    assert ing.app("http:///exact/more", "shop.test") == "web"  # Exact is exact
    assert ing.app("http:///legacyplus", "shop.test") == "other"  # ImplementationSpecific: nginx's prefix
    assert ing.app("http:///", "a.wild.test") == "other"
    assert ing.app("http:///", "a.b.wild.test") == "404"  # a wildcard stands for one label
    assert ing.app("http:///", "nowhere.test") == "404"
    assert ing.app("http:///", "else.test") == "404"  # another class: left alone
    seen = json.loads(ing.curl("http:///api/echo", "shop.test")[1])
    assert (seen["path"], seen["host"]) == ("/api/echo", "shop.test")
    assert seen["xri"] == net.client_ip and net.client_ip in seen["xff"]
    # rewrite-target: the matched prefix is replaced.
    ing.apply(ingress("rw", [rule("rw.test", path("/app", "Prefix", "web"))],
                      annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/"}))
    ing.answers("http:///app/x?y=1", "rw.test", "web")
    assert json.loads(ing.curl("http:///app/x?y=1", "rw.test")[1])["path"] == "/x?y=1"
    # A defaultBackend answers unknown hosts.
    ing.apply(ingress("fallback", defaultBackend=backend("other")))
    ing.answers("http:///", "nowhere.test", "other")
    assert ing.app("http:///apix", "shop.test") == "web"  # the rules still win for their host
    # kubectl get ingress shows the nodes' addresses; not for the other class.
    want = ",".join(sorted(n.ip for n in net.nodes))
    def status(name: str) -> Any:
        return json.loads(ing.k("get", "ingress", name, "-o", "json")).get("status") or {}

    ing.wait("ADDRESS", lambda: ",".join(sorted(a["ip"] for a in status("shop").get("loadBalancer", {})
                                                .get("ingress", []))) == want)
    assert "loadBalancer" not in json.dumps(status("elsewhere"))
    assert want.split(",")[0] in ing.k("get", "ingress", "shop")


def test_tls_sni_redirect_and_secret_rotation(ing: Ingresses) -> None:
    certs = {h: certificate(h) for h in ("a.test", "b.test")}
    for host, (crt, _) in certs.items():
        (ing.tmp / f"{host}.pem").write_bytes(crt)
    ing.apply(tls_secret("a-tls", *certs["a.test"]), tls_secret("b-tls", *certs["b.test"]),
              ingress("secure", [rule("a.test", path("/", "Prefix", "web")),
                                 rule("b.test", path("/", "Prefix", "api"))],
                      tls=[{"hosts": ["a.test"], "secretName": "a-tls"}, {"hosts": ["b.test"], "secretName": "b-tls"}]),
              ingress("plain", [rule("c.test", path("/", "Prefix", "web"))],
                      tls=[{"hosts": ["c.test"], "secretName": "a-tls"}],
                      annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "false"}))
    # SNI: each host's own certificate, verified by the client against it.
    ing.answers("https:///", "a.test", "web", cacert=ing.tmp / "a.test.pem")
    assert ing.app("https:///", "b.test", cacert=ing.tmp / "b.test.pem") == "api"
    assert ing.curl("https:///", "b.test", cacert=ing.tmp / "a.test.pem")[0] == 0  # not a.test's certificate
    body = ing.curl("https:///x", "a.test", cacert=ing.tmp / "a.test.pem")[1]
    assert json.loads(body)["xri"] == ing.net.client_ip
    # HTTP to a TLS host is redirected, unless the Ingress says not to.
    done = ing.net.sh(ing.net.client_ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                      "-H", "Host: a.test", f"http://{ing.net.nodes[1].ip}/p?q=1", timeout=15)
    assert done.stdout == "308 https://a.test/p?q=1"
    assert ing.app("http:///", "c.test") == "web"
    # Rotation: the new certificate is served.
    new = certificate("a.test")
    (ing.tmp / "a2.pem").write_bytes(new[0])
    ing.apply(tls_secret("a-tls", *new))
    ing.answers("https:///", "a.test", "web", cacert=ing.tmp / "a2.pem")
    # A broken certificate: an event, and the last good certificate stays.
    ing.apply(tls_secret("a-tls", b"-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n", new[1]))
    assert "tls.crt is not a PEM certificate" in ing.event("secure", "InvalidTLSSecret")
    # A Secret without a key (only an Opaque one can be stored so): an event, HTTP still served.
    ing.apply(tls_secret("nokey", new[0], None),
              ingress("keyless", [rule("d.test", path("/", "Prefix", "api"))],
                      tls=[{"secretName": "nokey"}, {"hosts": ["e.test"], "secretName": "ghost-tls"}]))
    assert "has no tls.key" in ing.event("keyless", "InvalidTLSSecret")
    assert "ghost-tls: not found" in ing.event("keyless", "SecretNotFound")
    ing.answers("http:///", "d.test", "api")
    assert ing.app("https:///", "a.test", cacert=ing.tmp / "a2.pem") == "web"
    assert ing.app("https:///", "b.test", cacert=ing.tmp / "b.test.pem") == "api"


def test_bad_backends_conflicts_annotations_and_refused_config(ing: Ingresses) -> None:
    ing.apply(ingress("broken", [rule("bad.test", path("/missing", "Prefix", "ghost"),
                                      path("/empty", "Prefix", "empty"), path("/ok", "Prefix", "web"),
                                      path("/noport", "Prefix", "web", "nope"))],
                      annotations={"nginx.ingress.kubernetes.io/made-up": "1",
                                   "nginx.ingress.kubernetes.io/proxy-body-size": "8m"}))
    ing.answers("http:///ok", "bad.test", "web")
    assert ing.app("http:///missing", "bad.test") == "503"
    started = time.monotonic()
    assert ing.app("http:///empty", "bad.test") == "503"  # no endpoints: refused at once, not a hang
    assert time.monotonic() - started < 5
    assert ing.app("http:///noport", "bad.test") == "503"
    assert "ghost" in ing.event("broken", "ServiceNotFound")
    assert "nope" in ing.event("broken", "ServicePortNotFound")
    assert "made-up" in ing.event("broken", "AnnotationIgnored")
    # The same host and path twice: the older Ingress keeps it, the newer is told.
    ing.apply(ingress("first", [rule("dup.test", path("/", "Prefix", "web"))]))
    ing.answers("http:///", "dup.test", "web")
    ing.apply(ingress("second", [rule("dup.test", path("/", "Prefix", "api"), path("/own", "Prefix", "api"))]))
    assert "first" in ing.event("second", "RuleConflict")
    assert ing.app("http:///", "dup.test") == "web"
    ing.answers("http:///own", "dup.test", "api")
    # A regex nginx refuses: that Ingress's last good version is kept, with an event; other
    # Ingresses still change.
    rx = {"nginx.ingress.kubernetes.io/use-regex": "true"}
    ing.apply(ingress("regex", [rule("rx.test", path("/v[0-9]+", "ImplementationSpecific", "api"))], annotations=rx))
    ing.answers("http:///v2/x", "rx.test", "api")
    ing.apply(ingress("regex", [rule("rx.test", path("/v([0-9]+", "ImplementationSpecific", "other"))], annotations=rx))
    assert "nginx refused" in ing.event("regex", "ConfigRejected")
    ing.apply(ingress("after", [rule("after.test", path("/", "Prefix", "other"))]))
    ing.answers("http:///", "after.test", "other")
    assert ing.app("http:///v2/x", "rx.test") == "api"  # the previous version still routes


def test_edit_scale_without_reload_and_agent_restart(ing: Ingresses) -> None:
    ing.apply(ingress("moving", [rule("move.test", path("/one", "Prefix", "web"))]))
    ing.answers("http:///one", "move.test", "web")
    ing.apply(ingress("moving", [rule("move.test", path("/two", "Prefix", "api"))]))
    ing.answers("http:///two", "move.test", "api")
    assert ing.app("http:///one", "move.test") == "404"
    # Scaling the backend reaches the new pod through the Service: no nginx reload.
    master, workers = ing.master_and_workers()
    ing.k("scale", "deployment", "api", "--replicas=2")
    pods = ing.wait("two api pods serving", lambda: {json.loads(ing.curl("http:///two", "move.test")[1])["pod"]
                                                     for _ in range(12)} if ing.app("http:///two", "move.test") == "api"
                    and ing.ready("api") == 2 else None, within=90)
    ing.wait("both pods answer", lambda: len({json.loads(ing.curl("http:///two", "move.test")[1])["pod"]
                                             for _ in range(16)}) == 2, within=30)
    assert pods and ing.master_and_workers() == (master, workers)
    # Reloads (other Ingresses changing) and the agent dying and coming back: requests in
    # flight meanwhile all answer (reloads are graceful; nginx outlives the agent, adopted).
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            got = ing.app("http:///two", "move.test")
            if got != "api":
                failures.append(got)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for i in range(3):
            ing.apply(ingress("churn", [rule(f"churn{i}.test", path("/", "Prefix", "web"))]))
            ing.answers("http:///", f"churn{i}.test", "web")
        ing.net.restart_agent(ing.net.nodes[0].name, kill=True)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert ing.master_and_workers()[0] == master
    ing.apply(ingress("moving", [rule("move.test", path("/three", "Prefix", "other"))]))
    ing.answers("http:///three", "move.test", "other")  # the restarted agent drives the adopted nginx
    assert ing.master_and_workers()[0] == master


def test_invalid_ingress_is_refused_with_the_field(ing: Ingresses) -> None:
    cases = [(ingress("bad-host", [rule("10.0.0.1", path("/", "Prefix", "web"))]),
              'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address'),
             (ingress("bad-path", [rule("x.test", path("/a/../b", "Prefix", "web"))]),
              "spec.rules[0].http.paths[0].path: Invalid value: \"/a/../b\": must not contain '/../'"),
             (ingress("bad-type", [rule("x.test", path("/", "Regex", "web"))]),
              'spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex"')]
    for obj, message in cases:
        done = ing.net.kubectl("apply", "-f", "-", input=json.dumps(obj))
        assert done.returncode != 0 and message in done.stderr, done.stderr


def test_service_create_with_an_ingress_host(ing: Ingresses) -> None:
    """`bosun service create --ingress-host` makes the route; `bosun service rm` takes it away."""
    def bosun(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([BOSUN, "--kubeconfig", str(ing.net.kubeconfig), "-n", NS, *args],
                              capture_output=True, text=True, timeout=150)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        return done

    bosun("service", "create", "--name", "blog", "--ingress-host", "blog.test", "--ingress-path", "/posts",
          "--publish", "8080", "-e", "APP=blog", "host", "python3", "-c", SERVER)
    ing.answers("http:///posts/1", "blog.test", "blog")
    assert ing.app("http:///", "blog.test") == "404"
    bosun("service", "rm", "blog")
    assert ing.net.kubectl("-n", NS, "get", "ingress", "blog").returncode != 0
    # blog.test is an unknown host again: the module's defaultBackend (Ingress "fallback") answers.
    ing.answers("http:///posts/1", "blog.test", "other")
