"""`kubectl port-forward` (kubectl 1.32, over its WebSocket tunnel, and over plain SPDY as its
fallback) to real crun containers of `bosun up --runtime oci`: pod, service and deployment
targets, several ports, concurrent connections, connections dropped by either side, a port
nothing listens on; and the official Python client's port-forward (the channel protocol)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from tests.e2e.netns_node import NetnsNode, netns_node
from tests.harness.fixtures import requires_netns

pytestmark = [requires_netns, pytest.mark.timeout(180)]

# An echo server on 7000, a one-line greeter on 7001 and on 7002 one that resets each
# connection after its first bytes, on every address of the pod.
SERVER = """
import socket, struct, threading
def drop(c):
    c.recv(10)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
def echo(c):
    with c:
        while d := c.recv(65536):
            c.sendall(d)
def greet(c):
    with c:
        c.sendall(b"second port\\n")
def serve(port, handler):
    s = socket.create_server(("0.0.0.0", port), reuse_port=True)
    while True:
        threading.Thread(target=handler, args=(s.accept()[0],), daemon=True).start()
threading.Thread(target=serve, args=(7001, greet), daemon=True).start()
threading.Thread(target=serve, args=(7002, drop), daemon=True).start()
serve(7000, echo)
"""
LABELS = {"app": "echo"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsNode]:
    with netns_node(tmp_path_factory.mktemp("portforward")) as n:
        n.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo", "namespace": "default"},
                 "spec": {"replicas": 1, "selector": {"matchLabels": LABELS}, "template": {
                     "metadata": {"labels": LABELS},
                     "spec": {"containers": [{"name": "echo", "image": "host",
                                              "command": ["python3", "-u", "-c", SERVER],
                                              "ports": [{"name": "echo", "containerPort": 7000}]}]}}}})
        n.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": "default"},
                 "spec": {"selector": LABELS, "ports": [{"port": 80, "targetPort": "echo"}]}})
        deadline = time.monotonic() + 90
        while not (pod := n.ok("get", "pods", "-l", "app=echo", "-o", "jsonpath={.items[0].metadata.name}")):
            assert time.monotonic() < deadline, "the deployment made no pod"
            time.sleep(0.3)
        n.wait_running(pod)
        yield n


def _pod(node: NetnsNode) -> str:
    return node.ok("get", "pods", "-l", "app=echo", "-o", "jsonpath={.items[0].metadata.name}")


class PortForward:
    """`kubectl port-forward` running in the node's namespace until closed."""

    def __init__(self, node: NetnsNode, target: str, *ports: str, spdy: bool = False) -> None:
        # spdy: kubectl's fallback, the HTTP connection itself upgraded to SPDY/3.1.
        env = dict(os.environ, KUBECTL_PORT_FORWARD_WEBSOCKETS="false") if spdy else None
        self.proc = subprocess.Popen(node.kubectl_argv("port-forward", target, *ports), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        for port in ports:
            line = self.proc.stdout.readline()
            assert line.startswith(f"Forwarding from 127.0.0.1:{port.split(':')[0]}"), \
                line + self._stderr()
            self.proc.stdout.readline()  # the same on [::1]

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def close(self) -> str:
        """Stops it (if it still runs); what it printed on stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=15)
        return err


def _echo(node: NetnsNode, port: int, payload: bytes) -> bytes:
    with node.connect(port) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        return got


def test_pod_forward_with_several_ports_concurrent_connections_and_dropped_ones(node: NetnsNode) -> None:
    pf = PortForward(node, f"pod/{_pod(node)}", "18000:7000", "18001:7001", "18002:7002")
    try:
        payloads = [os.urandom(200_000 + i) for i in range(8)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda p: _echo(node, 18000, p), payloads))
        assert results == payloads
        with node.connect(18001) as s:
            assert s.recv(100) == b"second port\n"
        # A client that goes away mid-transfer (RST) ends only its own connection.
        dropped = node.connect(18000)
        dropped.sendall(os.urandom(50_000))
        dropped.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        dropped.close()
        assert _echo(node, 18000, b"still here") == b"still here"
        # The pod resetting a connection ends that connection alone.
        with node.connect(18002) as s:
            s.sendall(b"hello")
            assert s.recv(100) == b""
        assert _echo(node, 18000, b"and here") == b"and here"
        assert pf.proc.poll() is None
    finally:
        err = pf.close()
    # kubectl logs the reset of its own local connection; the tunnel and the pod side had no error.
    assert "an error occurred forwarding" not in err and "lost connection" not in err, err


def test_service_and_deployment_targets(node: NetnsNode) -> None:
    svc = PortForward(node, "svc/echo", "18080:80")  # kubectl maps the service port to the pod's 7000
    deploy = PortForward(node, "deployment/echo", "18081:7000")
    try:
        assert _echo(node, 18080, b"via service") == b"via service"
        assert _echo(node, 18081, b"via deployment") == b"via deployment"
    finally:
        svc.close()
        deploy.close()


def test_the_spdy_fallback(node: NetnsNode) -> None:
    pf = PortForward(node, f"pod/{_pod(node)}", "18050:7000", "18051:7001", spdy=True)
    try:
        payloads = [os.urandom(100_000 + i) for i in range(4)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            assert list(pool.map(lambda p: _echo(node, 18050, p), payloads)) == payloads
        with node.connect(18051) as s:
            assert s.recv(100) == b"second port\n"
        assert pf.proc.poll() is None
    finally:
        pf.close()


@pytest.mark.parametrize("spdy", [False, True], ids=["websocket", "spdy"])
def test_a_port_nothing_listens_on_shows_the_error(node: NetnsNode, spdy: bool) -> None:
    pf = PortForward(node, f"pod/{_pod(node)}", "18099:7999", spdy=spdy)
    try:
        with node.connect(18099) as s:
            assert s.recv(100) == b""  # kubectl closes the connection it could not forward
        pf.proc.wait(15)
    finally:
        err = pf.close()
    assert "error forwarding port 7999 to pod default/" in err, err
    assert "connection refused" in err, err


# The official Python client forwards over the WebSocket channel protocol (ports in the query).
PYTHON_CLIENT = """
import json, sys
from kubernetes import client, config
from kubernetes.stream import portforward
config.load_kube_config(sys.argv[1])
pf = portforward(client.CoreV1Api().connect_get_namespaced_pod_portforward, sys.argv[2], "default",
                 ports="7000,7999")
s = pf.socket(7000)
s.sendall(b"through the python client")
got = s.recv(100)
closed = pf.socket(7999).recv(10)
print(json.dumps({"echo": got.decode(), "closed": closed.decode(), "error": pf.error(7999)}))
pf.close()
"""


def test_the_python_clients_port_forward(node: NetnsNode) -> None:
    done = subprocess.run(["ip", "netns", "exec", node.ns, sys.executable, "-c", PYTHON_CLIENT,
                           str(node.data / "kubeconfig"), _pod(node)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["echo"] == "through the python client" and got["closed"] == ""
    assert "error forwarding port 7999" in got["error"] and "connection refused" in got["error"]
