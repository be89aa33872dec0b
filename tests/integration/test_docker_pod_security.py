"""securityContext, bounded logs and hostPort on the docker driver: pods on a real control plane
and a private Docker Engine (docker_node), checked from inside the containers (their logs),
in the pod's status where the node refuses (a missing device), and on the node's disk."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import urllib.request
from pathlib import Path
from typing import Any

import docker
import pytest
from tests.integration import docker_node
from tests.integration.docker_env import BUSYBOX_IMAGE, requires_docker
from tests.integration.docker_node import Node, container
from tests.integration.helpers import create_namespace, pod_when

from bosun.client.rest import Client
from bosun.controllers._common import resource

pytestmark = [requires_docker, pytest.mark.timeout(120)]
PODS, EVENTS = resource("", "v1", "pods"), resource("", "v1", "events")
engine, server, node = docker_node.engine, docker_node.server, docker_node.node  # this module's fixtures
STATUS = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t'"


def _pod(node: Node, name: str, containers: list[dict[str, Any]], annotations: dict[str, str] | None = None,
         **spec: Any) -> dict[str, Any]:
    for c in containers:
        c.update(image=BUSYBOX_IMAGE, imagePullPolicy="Never")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"nodeName": node.config.node_name, "terminationGracePeriodSeconds": 1, "restartPolicy": "Never",
                     "containers": containers, **spec}}


def _exited(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _waiting(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return dict((statuses[0].get("state") or {}).get("waiting") or {})


async def _log(client: Client, ns: str, pod: str, c: str) -> list[str]:
    raw = await client.request_raw("GET", f"/api/v1/namespaces/{ns}/pods/{pod}/log", params={"container": c},
                                   accept="*/*")
    return raw.decode().split()


async def test_security_context_seen_from_inside_docker_containers(node: Node, namespace: str) -> None:
    """Capabilities, no_new_privs, a read-only root, /proc unmasked, seccomp (RuntimeDefault for
    the pod, Unconfined and a Localhost profile per container), privileged, user and groups, a
    sysctl, a device from Bosun's annotation, and the node's PID, IPC and network namespaces;
    a missing device and runAsNonRoot with the image's root user are refused with a reason."""
    profiles = node.config.seccomp_dir
    profiles.mkdir(parents=True)
    (profiles / "no-mkdir.json").write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    await node.start()
    c = node.client
    await create_namespace(c, namespace)
    masked = "grep -c ' /proc/keys ' /proc/self/mountinfo"
    await c.create(PODS, _pod(node, "secure", [
        {"name": "tight", "command": ["sh", "-c", f"{STATUS}; {masked}; touch /x 2>&1 | grep -c Read-only"],
         "securityContext": {"allowPrivilegeEscalation": False, "procMount": "Unmasked",
                             "readOnlyRootFilesystem": True,
                             "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}},
        {"name": "local", "command": ["sh", "-c", f"{STATUS}; {masked}; mkdir /tmp/d 2>&1 | grep -c 'not permitted'"],
         "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "no-mkdir.json"}}},
        {"name": "root", "command": ["sh", "-c", f"{STATUS}; {masked}; true"], "securityContext": {"privileged": True}},
        {"name": "user", "command": ["sh", "-c", "id -u; id -G; cat /proc/sys/net/ipv4/ip_unprivileged_port_start"],
         "securityContext": {"runAsUser": 1000, "runAsGroup": 3000}},
        {"name": "dev", "command": ["sh", "-c", f"{STATUS}; test -c /dev/fuse && echo present"],
         "securityContext": {"seccompProfile": {"type": "Unconfined"}}}],
        annotations={"devices.bosun.io/dev": "/dev/fuse"},
        securityContext={"seccompProfile": {"type": "RuntimeDefault"}, "supplementalGroups": [4000],
                         "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "81"}]}), namespace)
    await c.create(PODS, _pod(node, "nodev", [{"name": "app", "command": ["true"]}],
                              annotations={"devices.bosun.io/app": "/dev/no-such-device"}), namespace)
    await c.create(PODS, _pod(node, "rooted", [{"name": "app", "command": ["true"],
                                                "securityContext": {"runAsNonRoot": True}}]), namespace)
    ns_links = "for n in pid ipc net; do readlink /proc/self/ns/$n; done"
    await c.create(PODS, _pod(node, "hostns", [{"name": "app", "command": ["sh", "-c", ns_links]}],
                              hostPID=True, hostIPC=True, hostNetwork=True), namespace)

    pod = await pod_when(c, namespace, "secure", _exited, within=60)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert await _log(c, namespace, "secure", "tight") == ["CapEff:0000000000000400", "NoNewPrivs:1", "Seccomp:2",
                                                          "0", "1"]
    assert await _log(c, namespace, "secure", "local") == ["CapEff:00000000a80425fb", "NoNewPrivs:0", "Seccomp:2",
                                                          "1", "1"]
    root = await _log(c, namespace, "secure", "root")
    assert root[1:] == ["NoNewPrivs:0", "Seccomp:0", "0"] and int(root[0].split(":")[1], 16) > 0xFFFFFFFF, root
    assert await _log(c, namespace, "secure", "user") == ["1000", "3000", "4000", "81"]
    assert await _log(c, namespace, "secure", "dev") == ["CapEff:00000000a80425fb", "NoNewPrivs:0", "Seccomp:0",
                                                        "present"]

    pod = await pod_when(c, namespace, "nodev", lambda p: _waiting(p).get("reason") == "CreateContainerError")
    assert _waiting(pod)["message"] == "device /dev/no-such-device not found on the node"
    pod = await pod_when(c, namespace, "rooted", lambda p: _waiting(p).get("reason") == "CreateContainerConfigError")
    assert _waiting(pod)["message"].startswith("container has runAsNonRoot and image will run as root (pod: "), pod
    pod = await pod_when(c, namespace, "hostns", _exited, within=30)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    host_ns = [os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "ipc", "net")]
    assert await _log(c, namespace, "hostns", "app") == host_ns
    # The driver applies securityContext: the agent does not say it ignores any of it.
    events = (await c.list(EVENTS, namespace))["items"]
    assert not [e for e in events if e.get("reason") == "SecurityContextNotApplied"]


async def test_a_chatty_container_keeps_its_logs_bounded_on_docker(node: Node, namespace: str) -> None:
    """The CRI log rotates at the node's size (two files kept) and Docker's own json-file log
    is bounded by its max-size and max-file; the copy loses no line across either rotation."""
    node.config.container_log_max_bytes, node.config.container_log_max_files = 20_000, 2
    await node.start()
    c = node.client
    await create_namespace(c, namespace)
    # 12,000 lines of 60 bytes: about 1.4 MiB of Docker's JSON, so its file rotates once.
    script = 'i=0; while [ $i -lt 12000 ]; do printf "line-%05d-%048d\\n" $i 0; i=$((i+1)); done'
    await c.create(PODS, _pod(node, "chatty", [{"name": "c", "command": ["sh", "-c", script]}]), namespace)
    pod = await pod_when(c, namespace, "chatty", _exited, within=90)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    last = f"line-11999-{0:048d}"
    logs_dir = node.config.pods_dir / pod["metadata"]["uid"] / "logs" / "c"
    for _ in range(100):
        if (logs_dir / "0.log").exists() and (logs_dir / "0.log").read_text().endswith(f" {last}\n"):
            break
        await asyncio.sleep(0.1)
    assert sorted(p.name for p in logs_dir.iterdir()) == ["0.log", "0.log.1"]
    assert all(p.stat().st_size <= 20_000 + 100 for p in logs_dir.iterdir())
    kept = [line.split()[-1] for f in ("0.log.1", "0.log") for line in (logs_dir / f).read_text().splitlines()]
    first = int(kept[0].split("-")[1])
    assert kept == [f"line-{i:05d}-{0:048d}" for i in range(first, 12000)]  # in order, none lost or repeated
    assert (await _log(c, namespace, "chatty", "c"))[-1] == last

    cid = container(pod, "c")["containerID"].split("://")[-1]
    client = docker.APIClient(base_url=node.engine, version="auto")
    try:
        log_file = Path(client.inspect_container(cid)["LogPath"])
    finally:
        client.close()
    docker_files = sorted(p.name for p in log_file.parent.glob(log_file.name + "*"))
    assert docker_files == [log_file.name, log_file.name + ".1"], docker_files
    assert all(p.stat().st_size <= (1 << 20) + 200 for p in log_file.parent.glob(log_file.name + "*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return str(resp.read().decode())
    except OSError as e:
        return f"{type(e).__name__}: {e}"


async def test_a_host_port_answers_on_docker(node: Node, namespace: str) -> None:
    await node.start()
    c = node.client
    await create_namespace(c, namespace)
    port = _free_port()
    web = {"name": "web", "command": ["sh", "-c", "mkdir -p /www; echo via hostPort > /www/index.html; "
                                                  "exec httpd -f -p 8080 -h /www"],
           "ports": [{"containerPort": 8080, "hostPort": port}],
           "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
    await c.create(PODS, _pod(node, "web", [web], restartPolicy="Always"), namespace)
    pod = await pod_when(c, namespace, "web", lambda p: bool(container(p, "web").get("ready")) if
                         (p.get("status") or {}).get("containerStatuses") else False, within=60)
    gateway = pod["status"]["podIP"].rsplit(".", 1)[0] + ".1"  # the node's bridge address
    for host in ("127.0.0.1", gateway):
        got = ""
        for _ in range(50):
            got = await asyncio.to_thread(_get, f"http://{host}:{port}/index.html")
            if got == "via hostPort\n":
                break
            await asyncio.sleep(0.1)
        assert got == "via hostPort\n", (host, got)
