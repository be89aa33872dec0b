#!/usr/bin/env python3
"""Record the protobuf bodies real kubectl sends, as fixtures for tests/unit/test_protobuf.py.

Runs a small recording API stub on 127.0.0.1 (discovery from ``bosun.api.discovery``, a JSON
object for every write), and for each case runs kubectl twice: with ``--dry-run=client -o json``
(the object as JSON: the expected decode) and for real (the protobuf body kubectl POSTs).
Writes ``<case>.bin`` and ``<case>.json`` next to this file.

    .venv/bin/python tests/unit/protobuf_fixtures/capture.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from bosun.api import discovery

HERE = Path(__file__).parent
AGG = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "d", "namespace": "default", "labels": {"app": "d"}, "resourceVersion": "5",
                 "uid": "6f1c1d7e-0000-4000-8000-000000000001"},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "d"}},
             "template": {"metadata": {"labels": {"app": "d"}},
                          "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                                   "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
}

OVERRIDES = {
    "metadata": {"annotations": {"note": "x"}, "creationTimestamp": "2024-01-02T03:04:05Z"},
    "spec": {
        "containers": [{
            "name": "p2", "image": "busybox", "command": ["sh", "-c", "sleep 3600"],
            "env": [{"name": "A", "value": "1"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            "ports": [{"containerPort": 8080, "name": "http"}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
            "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 0},
            "securityContext": {"runAsNonRoot": False, "runAsUser": 0, "privileged": False},
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}, {"name": "cfg", "mountPath": "/cfg"}],
        }],
        "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                    {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420, "optional": True}}],
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}],
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
        "nodeSelector": {"disk": "ssd"},
    },
}

# name -> kubectl arguments (without --dry-run / -o)
CASES: dict[str, list[str]] = {
    "namespace": ["create", "namespace", "x"],
    "configmap": ["create", "configmap", "c", "--from-literal=a=b", "--from-literal=empty="],
    "configmap_binary": ["create", "configmap", "cb", "--from-file=blob={binfile}"],
    "secret": ["create", "secret", "generic", "s", "--from-literal=p=q", "--from-literal=e="],
    "secret_tls_type": ["create", "secret", "docker-registry", "reg", "--docker-server=r.example",
                        "--docker-username=u", "--docker-password=pw"],
    "deployment": ["create", "deployment", "d", "--image=nginx", "--replicas=3", "--port=80"],
    "deployment_zero": ["create", "deployment", "z", "--image=nginx", "--replicas=0"],
    "service_nodeport": ["create", "service", "nodeport", "np", "--tcp=8080:http"],
    "job": ["create", "job", "j", "--image=busybox"],
    "cronjob": ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *"],
    "serviceaccount": ["create", "serviceaccount", "sa"],
    "quota": ["create", "quota", "q", "--hard=cpu=1,memory=1G,pods=2"],
    "priorityclass": ["create", "priorityclass", "high", "--value=1000", "--description=important"],
    "ingress": ["create", "ingress", "ing", "--rule=foo.com/bar*=svc:8080"],
    "hpa": ["autoscale", "deployment", "d", "--min=2", "--max=5", "--cpu-percent=80"],
}

# kubectl 1.32 sends these as JSON (dynamic client): no fixture, but reported if that changes.
JSON_CASES: dict[str, list[str]] = {
    "pod": ["run", "p", "--image=busybox", "--labels=a=b", "--port=80", "--restart=Never", "--", "sleep", "1"],
    "pod_overrides": ["run", "p2", "--image=busybox", "--restart=Never", "--overrides", json.dumps(OVERRIDES)],
    "service_expose": ["expose", "deployment", "d", "--port=80"],
}

# Cases with no --dry-run: the fixture is the body alone; the test checks it against SOURCE_POD.
RAW_CASES: dict[str, list[str]] = {
    "debug_copy": ["debug", "p2", "--copy-to=p3", "--image=busybox", "--container=dbg", "--keep-labels",
                   "--keep-annotations", "--keep-liveness", "--keep-readiness", "--same-node",
                   "--share-processes=false"],
    "debug_node": ["debug", "node/n1", "--image=busybox"],
}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {}, "status": {}}


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, str, bytes]] = []
        self.answer: dict[str, Any] = {}
        self.source_pod: dict[str, Any] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/")
        if request.method == "GET":
            accept = request.headers.get("Accept", "")
            if path in ("/api", "/apis"):
                if "apidiscovery.k8s.io" in accept:
                    return web.Response(body=json.dumps(discovery.aggregated(path == "/api")),
                                        headers={"Content-Type": AGG})
                return web.json_response(discovery.core_versions() if path == "/api" else discovery.api_groups())
            if path == "/version":
                return web.json_response(discovery.version_info())
            parts = path.split("/")[1:]
            if parts[0] == "api" and len(parts) == 2:
                return web.json_response(discovery.resource_list("", parts[1]))
            if parts[0] == "apis" and len(parts) == 3:
                return web.json_response(discovery.resource_list(parts[1], parts[2]))
            if path.endswith("/deployments/d"):
                return web.json_response(DEPLOYMENT)
            if path.endswith("/pods/p2") and self.source_pod:
                return web.json_response(self.source_pod)
            if path == "/api/v1/nodes/n1":
                return web.json_response(NODE)
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": "NotFound", "code": 404}, status=404)
        body = await request.read()
        self.bodies.append((request.path, request.headers.get("Content-Type", ""), body))
        return web.json_response(self.answer, status=201)


async def kubectl(kubeconfig: str, args: list[str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", kubeconfig, "-n", "default", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err


def _inputs(tmp: Path, port: int) -> tuple[str, str]:
    """A kubeconfig for the stub, and a file of every byte value for ``--from-file``."""
    kubeconfig = tmp / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    binfile = tmp / "blob.bin"
    binfile.write_bytes(bytes(range(256)))
    return str(kubeconfig), str(binfile)


async def main() -> int:
    rec = Recorder()
    runner = web.AppRunner(rec.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig, binfile = _inputs(Path(tmp), port)
        try:
            for name, template in CASES.items():
                args = [a.replace("{binfile}", binfile) for a in template]
                rc, out, err = await kubectl(kubeconfig, [args[0], "--dry-run=client", "-o", "json", *args[1:]])
                if rc or not out.strip():
                    print(f"{name}: dry run failed: {err.decode().strip()}", file=sys.stderr)
                    failed += 1
                    continue
                expected = json.loads(out)
                rec.answer = expected
                rec.bodies.clear()
                rc, out, err = await kubectl(kubeconfig, args)
                posts = [b for b in rec.bodies if b[1].startswith("application/vnd.kubernetes.protobuf")]
                if rc or len(posts) != 1:
                    print(f"{name}: rc={rc} posts={[(p, c) for p, c, _ in rec.bodies]} {err.decode().strip()}",
                          file=sys.stderr)
                    failed += 1
                    continue
                (HERE / f"{name}.bin").write_bytes(posts[0][2])
                (HERE / f"{name}.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
                print(f"{name}: {posts[0][0]} {len(posts[0][2])} bytes")
            # The source of `kubectl debug --copy-to`: the overrides pod as kubectl's Go types print it.
            for name, args in JSON_CASES.items():
                rec.answer = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
                rec.bodies.clear()
                await kubectl(kubeconfig, args)
                ctypes = sorted({c for _, c, _ in rec.bodies})
                print(f"{name}: sent as {', '.join(ctypes) or 'nothing'} (no fixture)")
            pod_args = JSON_CASES["pod_overrides"]
            rc, out, err = await kubectl(kubeconfig, [pod_args[0], "--dry-run=client", "-o", "json", *pod_args[1:]])
            source = json.loads(out)
            source["spec"]["nodeName"] = "n1"
            rec.source_pod = source
            (HERE / "debug_source.json").write_text(json.dumps(source, indent=2, sort_keys=True) + "\n")
            for name, args in RAW_CASES.items():
                rec.answer = dict(source, metadata={"name": "p3", "namespace": "default"})
                rec.bodies.clear()
                rc, out, err = await kubectl(kubeconfig, args)
                posts = [b for b in rec.bodies if b[1].startswith("application/vnd.kubernetes.protobuf")]
                if len(posts) != 1:
                    print(f"{name}: rc={rc} posts={[(p, c) for p, c, _ in rec.bodies]} {err.decode().strip()}",
                          file=sys.stderr)
                    failed += 1
                    continue
                (HERE / f"{name}.bin").write_bytes(posts[0][2])
                print(f"{name}: {posts[0][0]} {len(posts[0][2])} bytes")
        finally:
            await runner.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
