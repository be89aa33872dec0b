"""apiregistration.k8s.io/v1 APIService: the served groups listed as Local and Available, an
aggregated API server (a real HTTPS server on loopback) checked and proxied to, and one whose
backend cannot work stored Available=False saying why, as kube-aggregator does."""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, served

from bosun.controlplane import ControlPlaneOptions
from bosun.security.pki import ensure_pki

GROUP = "demo.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    opts = ControlPlaneOptions(controllers=["apiservices"], scheduler=False)
    yield from served(tmp_path_factory.mktemp("apiservices"), options=opts)


def kubectl(srv: RunningServer, *args: str, stdin: str | None = None, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["kubectl", "--kubeconfig", srv.kubeconfig, *args], input=stdin, capture_output=True,
                          text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def available(srv: RunningServer, name: str) -> tuple[str, str, str]:
    obj = json.loads(kubectl(srv, "get", "apiservice", name, "-o", "json").stdout)
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == "Available":
            return c["status"], c["reason"], c["message"]
    return "", "", ""


class Aggregated:
    """A tiny aggregated API server: HTTPS on loopback with a certificate for the Service's
    DNS name, answering discovery and one list, remembering who asked."""

    def __init__(self, tmp: Path, dns_name: str) -> None:
        pki = ensure_pki(tmp, [dns_name, "127.0.0.1"])
        self.ca_pem = pki.ca_cert_pem
        self.users: list[str] = []
        users = self.users

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                users.append(self.headers.get("X-Remote-User", ""))
                if self.path.startswith(f"/apis/{GROUP}/v1alpha1/flavours"):
                    body: dict[str, Any] = {"kind": "FlavourList", "apiVersion": f"{GROUP}/v1alpha1",
                                            "items": [{"metadata": {"name": "vanilla"}}]}
                else:
                    body = {"kind": "APIResourceList", "groupVersion": f"{GROUP}/v1alpha1", "resources": [
                        {"name": "flavours", "namespaced": False, "kind": "Flavour", "verbs": ["list"]}]}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(pki.server_cert_path, pki.server_key_path)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def manifests(ns: str, port: int, ca_pem: bytes) -> str:
    docs = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "demo", "namespace": ns},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "demo", "namespace": ns},
         "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port}]}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": f"v1alpha1.{GROUP}"},
         "spec": {"group": GROUP, "version": "v1alpha1", "groupPriorityMinimum": 100, "versionPriority": 10,
                  "service": {"namespace": ns, "name": "demo"},
                  "caBundle": base64.b64encode(ca_pem).decode()}},
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def test_built_in_groups_are_local_and_available(server: RunningServer) -> None:
    wait_for("v1.apps to be registered", lambda: kubectl(server, "get", "apiservice", "v1.apps", check=False)
             .returncode == 0)
    out = kubectl(server, "get", "apiservices").stdout
    lines = {line.split()[0]: line.split()[1:3] for line in out.splitlines()[1:]}
    assert out.split()[:4] == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    for name in ("v1.", "v1.apps", "v1.batch", "v1.apiregistration.k8s.io", "v1.apiextensions.k8s.io"):
        assert lines[name] == ["Local", "True"], (name, out)
    assert available(server, "v1.apps") == ("True", "Local", "Local APIServices are always available")


def test_aggregated_api_is_checked_and_proxied(server: RunningServer, tmp_path: Path) -> None:
    ns = f"agg-{uuid.uuid4().hex[:6]}"
    kubectl(server, "create", "namespace", ns)
    backend = Aggregated(tmp_path / "agg", f"demo.{ns}.svc")
    try:
        kubectl(server, "apply", "-f", "-", stdin=manifests(ns, backend.port, backend.ca_pem))
        wait_for("the aggregated APIService to be Available",
                 lambda: available(server, f"v1alpha1.{GROUP}")[0] == "True")
        assert available(server, f"v1alpha1.{GROUP}") == ("True", "Passed", "all checks passed")
        got = json.loads(kubectl(server, "get", "--raw", f"/apis/{GROUP}/v1alpha1/flavours").stdout)
        assert got["items"] == [{"metadata": {"name": "vanilla"}}]
        # Discovery lists the aggregated group, so kubectl knows its kinds.
        listed = kubectl(server, "api-resources", f"--api-group={GROUP}", "--no-headers").stdout.split()
        assert listed[:2] == ["flavours", f"{GROUP}/v1alpha1"], listed
        assert kubectl(server, "get", "flavours", "-o", "name").stdout.split() == ["flavour.demo.example.com/vanilla"]
        assert "admin" in backend.users[-1]  # the caller's identity, passed on
        # A CA that did not sign the server's certificate: the check fails and says so.
        other = ensure_pki(tmp_path / "other", ["nothing"]).ca_cert_pem
        kubectl(server, "patch", "apiservice", f"v1alpha1.{GROUP}", "--type=merge",
                "-p", json.dumps({"spec": {"caBundle": base64.b64encode(other).decode()}}))
        wait_for("the check to fail", lambda: available(server, f"v1alpha1.{GROUP}")[0] == "False")
        _, reason, message = available(server, f"v1alpha1.{GROUP}")
        assert reason == "FailedDiscoveryCheck" and "certificate verify failed" in message, message
    finally:
        backend.close()
        kubectl(server, "delete", "apiservice", f"v1alpha1.{GROUP}", "--ignore-not-found", check=False)
        kubectl(server, "delete", "namespace", ns, "--wait=false", check=False)


def test_unreachable_backends_say_why(server: RunningServer) -> None:
    ns = f"agg-{uuid.uuid4().hex[:6]}"
    kubectl(server, "create", "namespace", ns)
    name = "v1beta1.missing.example.com"
    svc = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name},
           "spec": {"group": "missing.example.com", "version": "v1beta1", "groupPriorityMinimum": 100,
                    "versionPriority": 10, "insecureSkipTLSVerify": True,
                    "service": {"namespace": ns, "name": "absent"}}}
    try:
        kubectl(server, "apply", "-f", "-", stdin=json.dumps(svc))
        wait_for("ServiceNotFound", lambda: available(server, name)[1] == "ServiceNotFound")
        assert available(server, name) == ("False", "ServiceNotFound", f'service/absent in "{ns}" is not present')
        row = kubectl(server, "get", "apiservice", name, "--no-headers").stdout.split()
        assert row[1:4] == [f"{ns}/absent", "False", "(ServiceNotFound)"]
        kubectl(server, "create", "service", "clusterip", "absent", "--tcp=443:8443", "-n", ns)
        wait_for("EndpointsNotFound", lambda: available(server, name)[1] == "EndpointsNotFound")
        raw = kubectl(server, "get", "--raw", "/apis/missing.example.com/v1beta1/things", check=False)
        assert raw.returncode != 0 and "cannot find endpoints for service/absent" in raw.stderr, raw.stderr
        # Bad input: the name must be version.group; a caBundle with insecureSkipTLSVerify.
        bad = json.loads(json.dumps(svc))
        bad["metadata"]["name"] = "wrong"
        bad["spec"]["caBundle"] = base64.b64encode(b"x").decode()
        refused = kubectl(server, "apply", "-f", "-", stdin=json.dumps(bad), check=False)
        assert refused.returncode != 0
        assert 'metadata.name: Invalid value: "wrong": must be `spec.version+"."+spec.group`' in refused.stderr
        assert "spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present" \
            in refused.stderr
    finally:
        kubectl(server, "delete", "apiservice", name, "--ignore-not-found", check=False)
        kubectl(server, "delete", "namespace", ns, "--wait=false", check=False)
