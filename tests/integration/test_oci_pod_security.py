"""securityContext through the whole node: pods on a real control plane and an agent with
the oci driver, checked from inside the container (its log) and in the pod's status where
the node refuses (runAsNonRoot, a sysctl the node does not allow, a missing device)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer
from tests.integration.helpers import agent_config, client_for, create_namespace, create_pod, node_name, pod_when
from tests.integration.oci_env import requires_oci, wait_for
from tests.integration.oci_node import oci_node

from bosun.agent.agent import Agent
from bosun.agent.runtime.process import ProcessDriver
from bosun.client.rest import Client
from bosun.controllers._common import resource

pytestmark = [requires_oci, pytest.mark.timeout(90)]
PODS = resource("", "v1", "pods")


@pytest.fixture
async def node(api_server: RunningServer, tmp_path: Path) -> AsyncIterator[tuple[Client, str]]:
    """An oci node that allows the unsafe ``kernel.msg*`` sysctls and nothing else unsafe."""
    async with oci_node(api_server, tmp_path, "sec", allowed_unsafe_sysctls=["kernel.msg*"]) as node:
        yield node


def _waiting(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return dict((statuses[0].get("state") or {}).get("waiting") or {})


def _exited(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


async def _log(client: Client, ns: str, name: str) -> str:
    raw = await client.request_raw("GET", f"/api/v1/namespaces/{ns}/pods/{name}/log", accept="*/*")
    return raw.decode()


async def test_run_as_non_root_refused_for_a_root_image_and_honoured_with_a_user(
        node: tuple[Client, str], namespace: str) -> None:
    client, name = node
    await create_namespace(client, namespace)
    await create_pod(client, namespace, name, "rooted", [{"name": "app", "command": ["id", "-u"],
                                                         "securityContext": {"runAsNonRoot": True}}])
    pod = await pod_when(client, namespace, "rooted", lambda p: _waiting(p).get("reason") ==
                         "CreateContainerConfigError")
    assert _waiting(pod)["message"].startswith("container has runAsNonRoot and image will run as root (pod: "), pod
    assert pod["status"]["phase"] == "Pending"
    await create_pod(client, namespace, name, "user", [{"name": "app", "command": ["sh", "-c", "id -u; id -g"]}],
                     restartPolicy="Never",
                     securityContext={"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 3000})
    pod = await pod_when(client, namespace, "user", _exited)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert (await _log(client, namespace, "user")).split() == ["1000", "3000"]


async def test_sysctls_safe_allowed_by_the_node_and_forbidden(node: tuple[Client, str], namespace: str) -> None:
    client, name = node
    await create_namespace(client, namespace)
    script = "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/msgmax"
    await create_pod(client, namespace, name, "tuned", [{"name": "app", "command": ["sh", "-c", script]}],
                     restartPolicy="Never", securityContext={"sysctls": [
                         {"name": "net.ipv4.ip_unprivileged_port_start", "value": "81"},
                         {"name": "kernel.msgmax", "value": "12345"}]})
    await create_pod(client, namespace, name, "unsafe", [{"name": "app", "command": ["true"]}],
                     securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]})
    pod = await pod_when(client, namespace, "tuned", _exited)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert (await _log(client, namespace, "tuned")).split() == ["81", "12345"]
    pod = await pod_when(client, namespace, "unsafe", _exited)
    assert pod["status"]["reason"] == "SysctlForbidden", pod["status"]
    assert pod["status"]["message"] == 'Pod was rejected: forbidden sysctl: "net.core.somaxconn" not allowlisted'
    assert pod["status"]["phase"] == "Failed" and not pod["status"].get("containerStatuses")


async def test_device_annotation_present_and_missing(node: tuple[Client, str], namespace: str) -> None:
    client, name = node
    await create_namespace(client, namespace)
    for pod_name, device in (("fuse", "/dev/fuse"), ("nodev", "/dev/no-such-device")):
        await client.create(PODS, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "annotations": {"devices.bosun.io/app": device}},
            "spec": {"nodeName": name, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "host",
                                     "command": ["sh", "-c", "test -c /dev/fuse && echo present"]}]}}, namespace)
    pod = await pod_when(client, namespace, "fuse", _exited)
    assert pod["status"]["phase"] == "Succeeded" and (await _log(client, namespace, "fuse")).strip() == "present"
    pod = await pod_when(client, namespace, "nodev", lambda p: _waiting(p).get("reason") == "CreateContainerError")
    assert _waiting(pod)["message"] == "device /dev/no-such-device not found on the node"


STATUS = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t'"


async def test_security_context_seen_from_inside(node: tuple[Client, str], namespace: str, tmp_path: Path) -> None:
    """Pod and container fields reach the container: seccomp (RuntimeDefault, and a Localhost
    profile from the node's seccomp directory), no_new_privs, capabilities, privileged, procMount."""
    client, name = node
    await create_namespace(client, namespace)
    profiles = tmp_path / "agent" / "seccomp"  # the node's data dir (see oci_node)
    profiles.mkdir(parents=True)
    (profiles / "no-mkdir.json").write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    await create_pod(client, namespace, name, "secure", restartPolicy="Never",
                     securityContext={"seccompProfile": {"type": "RuntimeDefault"}}, containers=[
        {"name": "tight", "command": ["sh", "-c", f"{STATUS}; grep -c ' /proc/kcore ' /proc/self/mountinfo; true"],
         "securityContext": {"allowPrivilegeEscalation": False, "procMount": "Unmasked",
                             "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}},
        {"name": "local", "command": ["sh", "-c", f"{STATUS}; mkdir /tmp/d 2>&1 | grep -c 'not permitted'"],
         "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "no-mkdir.json"}}},
        {"name": "root", "command": ["sh", "-c", STATUS], "securityContext": {"privileged": True}}])
    pod = await pod_when(client, namespace, "secure", _exited, within=40)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]

    async def log(container: str) -> list[str]:
        raw = await client.request_raw("GET", f"/api/v1/namespaces/{namespace}/pods/secure/log",
                                       params={"container": container}, accept="*/*")
        return raw.decode().split()

    assert await log("tight") == ["CapEff:0000000000000400", "NoNewPrivs:1", "Seccomp:2", "0"]
    assert (await log("local"))[2:] == ["Seccomp:2", "1"]
    root = await log("root")
    assert root[1:] == ["NoNewPrivs:0", "Seccomp:0"] and int(root[0].split(":")[1], 16) > 0xFFFFFFFF


async def test_the_process_runtime_says_what_it_does_not_apply(api_server: RunningServer, tmp_path: Path,
                                                              namespace: str) -> None:
    """Its containers are host processes: the pod runs, with a warning naming the fields."""
    client = client_for(api_server)
    config = agent_config(tmp_path / "agent", node_name(tmp_path, "proc", keep=10))
    driver = ProcessDriver(config.runtime_dir / "process", "127.0.0.1")
    agent = Agent(client, config, driver, node_ip="127.0.0.1")
    try:
        await agent.start()
        await create_namespace(client, namespace)
        await create_pod(client, namespace, config.node_name, "loose", [
            {"name": "app", "command": ["true"], "securityContext": {"privileged": True,
                                                                    "capabilities": {"add": ["NET_ADMIN"]}}}],
            restartPolicy="Never", securityContext={"seccompProfile": {"type": "RuntimeDefault"}})
        pod = await pod_when(client, namespace, "loose", _exited)
        assert pod["status"]["phase"] == "Succeeded"
        events = await wait_for(lambda: _events(client, namespace, "SecurityContextNotApplied"))
        assert events == ["the process runtime runs container app as a host process: privileged, capabilities, "
                          "seccompProfile not applied (use the oci runtime)"]
    finally:
        await agent.stop()
        for st in await driver.list_containers():
            await driver.remove_container(st.id)
        for sb in await driver.list_sandboxes():
            await driver.remove_sandbox(sb.id)
        await client.close()


async def _events(client: Client, namespace: str, reason: str) -> list[str]:
    items = (await client.list(resource("", "v1", "events"), namespace))["items"]
    return [str(e.get("message")) for e in items if e.get("reason") == reason]
