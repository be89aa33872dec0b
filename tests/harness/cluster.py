"""A multi-node cluster on one machine: a ``bosun server`` and N ``bosun agent`` processes,
each agent inside a network namespace of its own (see netns.py for the network, cgroups.py
for how processes are tracked, sweep.py for what a crashed run leaves behind).

Everything of one cluster lives under the harness id ``ID``: ``/tmp/bosun-harness/ID`` (data
dirs, logs, an ``owner`` file naming the process that runs the harness), namespaces
``bnhID-*``, the root link ``bnhIDm``, the cgroup ``bnhID``. :meth:`NetCluster.close` removes
all of it and is safe to call twice, after a failed start, or from atexit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness import cgroups, sweep
from tests.harness.netns import PREFIX, HarnessNet, pick_subnet, subnet_lock

from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.rest import Client
from bosun.security.tokens import create_join_token

BOSUN = str(Path(sys.executable).with_name("bosun"))
ROOT = sweep.ROOT
API_PORT = 6443
NODE_HOST_BASE = 10  # node i gets .10+i on the harness /24


class HarnessError(RuntimeError):
    pass


@dataclass
class Node:
    """One node: its name (also the Node object's), network namespace, address on the
    data-centre network, data dir, and the agent process (None once killed)."""

    name: str
    netns: str
    ip: str
    data_dir: Path
    cgroup: str  # relative cgroup path: the agent and every pod of this node live below it
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "agent.log"


class NetCluster:
    """See the package docstring (tests/harness/__init__.py) for the API."""

    def __init__(self, nodes: int = 3, *, node_monitor_grace_period: float = 4.0, pod_eviction_timeout: float = 2.0,
                 log_level: str = "info", ready_timeout: float = 90.0, server_args: Iterable[str] = (),
                 agent_args: Iterable[str] = ()) -> None:
        """``server_args``/``agent_args``: extra flags for ``bosun server`` / every ``bosun agent``
        (e.g. ``["--cluster-cidr", "10.60.0.0/16"]``), after the harness's own."""
        self.initial_nodes = nodes
        self.server_args = list(server_args)
        self.agent_args = list(agent_args)
        self.grace = node_monitor_grace_period
        self.eviction = pod_eviction_timeout
        self.log_level = log_level
        self.ready_timeout = ready_timeout
        self.hid = secrets.token_hex(3)[:5]
        self.prefix = f"{PREFIX}{self.hid}"
        self.base = ROOT / self.hid
        self.net: HarnessNet | None = None
        self.nodes: list[Node] = []
        self.server: subprocess.Popen[bytes] | None = None
        self.join_token = ""
        self._next_index = 1
        self._closed = False
        self._lock = threading.Lock()
        # Seconds since start() began: "network" (namespaces made), "server" (API ready),
        # "start" (every node Ready); and "close" (the seconds close() took).
        self.timings: dict[str, float] = {}

    # -- addresses and credentials -------------------------------------------------------------

    @property
    def manager_ip(self) -> str:
        assert self.net is not None
        return self.net.manager_ip

    @property
    def url(self) -> str:
        return f"https://{self.manager_ip}:{API_PORT}"

    @property
    def server_dir(self) -> Path:
        return self.base / "server"

    @property
    def kubeconfig(self) -> str:
        return str(self.server_dir / "kubeconfig")

    @property
    def ca_path(self) -> str:
        return str(self.server_dir / "pki" / "ca.crt")

    @property
    def token(self) -> str:
        """The admin bearer token (what the kubeconfig holds)."""
        return load_kubeconfig(self.kubeconfig).token or ""

    @property
    def client_ns(self) -> str:
        assert self.net is not None
        return self.net.client_ns

    @property
    def client_ip(self) -> str:
        assert self.net is not None
        return self.net.client_ip

    @property
    def router_ip(self) -> str:
        """The default gateway of nodes and client (``.254``): it forwards nothing."""
        assert self.net is not None
        return self.net.router_ip

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no live node {name!r} in this harness (have {[n.name for n in self.nodes]})")

    # -- start and stop ------------------------------------------------------------------------

    def start(self) -> NetCluster:
        """Sweep leftovers of dead runs, then network, server, join token, nodes (all Ready).
        The nodes' namespaces are made while the server starts."""
        began = time.monotonic()
        sweep.sweep()
        sweep.claim(self.base)
        atexit.register(self.close)
        sweep.install_sigterm()
        try:
            with subnet_lock():
                self.net = HarnessNet(self.hid, pick_subnet())
                self.net.create()
            self._launch_server()
            nodes = [self._prepare_node() for _ in range(self.initial_nodes)]
            self.timings["network"] = time.monotonic() - began
            self._wait_server()
            self.timings["server"] = time.monotonic() - began
            # What `bosun token create` does (in-process: one Python start less); the nodes
            # join with it as any node does.
            self.join_token = create_join_token(self.server_dir, 12 * 3600)
            self._start_nodes(nodes)
        except BaseException:
            self.close()
            raise
        self.timings["start"] = time.monotonic() - began
        return self

    def _launch_server(self) -> None:
        self.server_dir.mkdir(parents=True, exist_ok=True)
        with open(self.base / "server.log", "wb") as log:
            argv = [BOSUN, "server", "--data-dir", str(self.server_dir), "--listen", f"{self.manager_ip}:{API_PORT}",
                    "--node-monitor-grace-period", str(self.grace), "--pod-eviction-timeout", str(self.eviction),
                    "--log-level", self.log_level, *self.server_args]
            self.server = subprocess.Popen(cgroups.wrap(f"{self.prefix}/server", argv), stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _wait_server(self) -> None:
        assert self.server is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = (self.base / "server.log").read_text(errors="replace")
            if "\nready" in text:
                return
            if self.server.poll() is not None:
                break
            time.sleep(0.05)
        raise HarnessError(f"bosun server did not start:\n{(self.base / 'server.log').read_text(errors='replace')}")

    def close(self) -> None:
        """Remove every process, cgroup, namespace, link, mount and file of this cluster."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        began = time.monotonic()
        atexit.unregister(self.close)
        if self.server is not None and self.server.poll() is None:
            # Agents first (SIGKILL: a node's teardown is not the test's business), then the
            # server gets SIGTERM so it stops as it would in real life (and runs its checks).
            for node in self.nodes:
                cgroups.destroy(node.cgroup)
            self.server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.server.wait(15)
        sweep.teardown(self.hid)
        for proc in [self.server, *(n.proc for n in self.nodes)]:
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        self.timings["close"] = time.monotonic() - began

    def __enter__(self) -> NetCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- nodes ---------------------------------------------------------------------------------

    def add_nodes(self, count: int) -> list[Node]:
        """Start ``count`` agents at once and wait until all are Ready."""
        return self._start_nodes([self._prepare_node() for _ in range(count)])

    def add_node(self) -> Node:
        """One more node (namespace, veth, agent), returned once Ready."""
        return self.add_nodes(1)[0]

    def _start_nodes(self, nodes: list[Node]) -> list[Node]:
        for node in nodes:
            self._start_agent(node)
        self.save_state()
        self.wait_ready([n.name for n in nodes])
        return nodes

    def _prepare_node(self) -> Node:
        """The node's namespace, plugged into the bridge, and its data dir (no agent yet)."""
        assert self.net is not None
        index = self._next_index
        self._next_index += 1
        name = f"n{index}"
        node = Node(name=name, netns=self.net.node_ns(name), ip=self.net.host(NODE_HOST_BASE + index),
                    data_dir=self.base / name, cgroup=f"{self.prefix}/{name}")
        node.data_dir.mkdir(parents=True, exist_ok=True)
        self.nodes.append(node)
        self.net.attach(node.netns, name, node.ip)
        return node

    def _agent_argv(self, node: Node) -> list[str]:
        return ["ip", "netns", "exec", node.netns, BOSUN, "agent", "--server", self.url, "--token", self.join_token,
                "--ca-file", self.ca_path, "--name", node.name, "--node-ip", node.ip, "--runtime", "oci",
                "--data-dir", str(node.data_dir), "--cgroup-parent", f"{node.cgroup}/pods",
                "--ipam-dir", str(node.data_dir / "ipam"), "--log-level", self.log_level, *self.agent_args]

    def _start_agent(self, node: Node) -> None:
        with open(node.log_path, "ab") as log:
            node.proc = subprocess.Popen(cgroups.wrap(f"{node.cgroup}/agent", self._agent_argv(node)), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill_node(self, name: str) -> None:
        """A node's death: SIGKILL its agent, shims and containers, delete its namespace (and
        with it its link to the bridge). Its Node object stays in the API, as a dead
        machine's does, and goes NotReady after the grace period."""
        node = self.node(name)
        if node.proc is not None:
            # The agent first: a dead machine reports nothing of its containers' deaths, but an
            # agent alive for the milliseconds the cgroup kill takes would see their shims exit
            # (it is told at once) and report the pods failed before it goes itself.
            node.proc.kill()
            node.proc.wait(10)
            node.proc = None
        cgroups.destroy(node.cgroup)
        assert self.net is not None
        self.net.delete_ns(node.netns)
        self.nodes.remove(node)
        self.save_state()

    def restart_agent(self, name: str, *, kill: bool = False, wait_ready: bool = True) -> None:
        """Stop the agent (SIGTERM, or SIGKILL with ``kill``) and start it again, with the same
        flags; its pods keep running meanwhile. With ``wait_ready``, returns once the new agent
        has started (printed ``ready``: registered, pods resynced) and its Node is Ready."""
        node = self.node(name)
        offset = node.log_path.stat().st_size if node.log_path.exists() else 0
        if node.proc is not None:
            node.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                node.proc.wait(30)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(10)
        self._start_agent(node)
        if wait_ready:
            self._wait_agent_started(node, offset)
            self.wait_ready([name])

    def _wait_agent_started(self, node: Node, offset: int) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            with open(node.log_path, "rb") as f:
                f.seek(offset)
                if b"\nready\n" in b"\n" + f.read():
                    return
            if (node.proc is not None and node.proc.poll() is not None) or time.monotonic() > deadline:
                raise HarnessError(f"agent of {node.name} did not start again:\n{_tail(node.log_path)}")
            time.sleep(0.1)

    def partition(self, name: str) -> None:
        """Cut the node's link to the data-centre network (both directions)."""
        assert self.net is not None
        self.net.set_port(self.node(name).name, up=False)

    def heal(self, name: str) -> None:
        assert self.net is not None
        self.net.set_port(self.node(name).name, up=True)

    def state(self) -> dict[str, Any]:
        """What scripts/cluster.py status shows (also written to ``state.json``)."""
        return {"id": self.hid, "url": self.url, "kubeconfig": self.kubeconfig, "manager_ip": self.manager_ip,
                "client_ns": self.client_ns, "client_ip": self.client_ip, "owner": os.getpid(),
                "nodes": [{"name": n.name, "netns": n.netns, "ip": n.ip, "data_dir": str(n.data_dir),
                           "log": str(n.log_path)} for n in self.nodes]}

    def save_state(self) -> None:
        tmp = self.base / ".state.json"
        tmp.write_text(json.dumps(self.state(), indent=1))
        tmp.rename(self.base / "state.json")

    # -- using the cluster ---------------------------------------------------------------------

    def sh(self, netns: str, *cmd: str, timeout: float = 30, check: bool = False,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in network namespace ``netns`` (a node's ``.netns`` or ``.client_ns``)."""
        return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True,
                              timeout=timeout, check=check, input=input)

    def pod_pid(self, namespace: str, name: str) -> int:
        """A host pid of one of the pod's container processes (found in its cgroup on its node)."""
        p = self.kubectl_json("get", "pod", "-n", namespace, name)
        node = self.node(p["spec"].get("nodeName", ""))
        pids = cgroups.pids(f"{node.cgroup}/pods/pod{p['metadata']['uid']}")
        if not pids:
            raise HarnessError(f"pod {namespace}/{name} has no running process on {node.name}")
        return pids[0]

    def pod_sh(self, namespace: str, name: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a host command (``ip``, ``nft``, ``busybox nc``...) in the pod's network namespace,
        as root with the host's file system: no API round trip, no container limits."""
        return subprocess.run(["nsenter", "-t", str(self.pod_pid(namespace, name)), "-n", "--", *cmd],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        home = self.base / "home"
        home.mkdir(exist_ok=True)
        return subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True,
                              timeout=timeout, input=input, env=dict(os.environ, HOME=str(home)), check=False)

    def kubectl_json(self, *args: str) -> Any:
        done = self.kubectl(*args, "-o", "json")
        if done.returncode != 0:
            raise HarnessError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return json.loads(done.stdout)

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[Client]:
        """``async with cluster.client() as c:`` a bosun.client.rest.Client as the admin."""
        c = Client(load_kubeconfig(self.kubeconfig))
        try:
            yield c
        finally:
            await c.close()

    def node_conditions(self) -> dict[str, str]:
        """Node name -> status of its Ready condition ("True", "False", "Unknown")."""
        out = {}
        for item in self.kubectl_json("get", "nodes")["items"]:
            ready = [c for c in item.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
            out[item["metadata"]["name"]] = ready[0]["status"] if ready else "Unknown"
        return out

    def wait_ready(self, names: Iterable[str], timeout: float | None = None) -> None:
        want = set(names)
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while True:
            with contextlib.suppress(HarnessError):
                conditions = self.node_conditions()
                if all(conditions.get(n) == "True" for n in want):
                    return
            dead = [n.name for n in self.nodes if n.name in want and n.proc is not None and n.proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"--- {n.name} agent.log (tail)\n" + _tail(n.log_path) for n in self.nodes
                                 if n.name in want)
                why = f"agents exited: {dead}" if dead else f"not Ready within {timeout or self.ready_timeout}s"
                raise HarnessError(f"nodes {sorted(want)}: {why}\n{logs}")
            time.sleep(0.3)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
