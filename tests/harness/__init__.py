"""Multi-node test harness: one control plane and N node agents, each in a network namespace.

    from tests.harness import NetCluster
    with NetCluster(nodes=3) as cluster:          # or the `netcluster` / `netcluster_factory` fixtures
        cluster.kubectl("get", "nodes")           # CompletedProcess[str]
        n1 = cluster.nodes[0]                     # Node(name="n1", netns, ip, data_dir, cgroup, proc)
        cluster.sh(n1.netns, "busybox", "ping", "-c1", cluster.nodes[1].ip)
        cluster.sh(cluster.client_ns, "busybox", "wget", "-qO-", f"http://{n1.ip}:30080/")

What it builds (ids, names and addresses are random per cluster so parallel runs never meet):

- the data-centre network: a bridge ``br0`` inside a namespace of its own; each node and the
  client namespace are plugged into it by a veth, with an address from a random /24 of
  198.18.0.0/15; the root namespace (where the test runs) gets one veth into it too, with the
  "manager" address ``.1`` on which ``bosun server`` listens (its certificate covers it);
  nodes and client route by default via ``.254`` on the bridge, a router that forwards
  nothing (a data-centre network with no way out);
- the control plane: ``bosun server`` as a subprocess in the root namespace, SQLite store,
  short node-failure timings (grace 4 s, eviction 2 s, as tests/conftest.py's ``cluster``);
- each node: ``ip netns exec bnhID-nK bosun agent --runtime oci`` joining with a join token
  (minted as ``bosun token create`` does), with its own data dir, cgroup parent and IPAM directory, real
  crun containers; names ``n1``, ``n2``...; addresses ``.11``, ``.12``...; the client is ``.250``.
- the pod network: each node's ``spec.podCIDR`` is a /24 of 10.244.0.0/16 from the control
  plane's IPAM controller; pods on different nodes reach each other with their own addresses
  through the VXLAN overlay (``bosun.1`` in each node's namespace).

API of :class:`NetCluster` (stable: other tests build on it):

- ``NetCluster(nodes=3, node_monitor_grace_period=4.0, pod_eviction_timeout=2.0, log_level="info",
  ready_timeout=90.0, server_args=(), agent_args=())``; ``start()`` (or ``with``) returns it
  with every node Ready; ``timings`` holds seconds: "network", "server", "start" (since start
  began: namespaces made, API ready, every node Ready) and "close";
- ``url``, ``kubeconfig`` (path), ``token`` (admin bearer token), ``join_token``, ``ca_path``,
  ``manager_ip``, ``router_ip``, ``client_ns``, ``client_ip``, ``nodes`` (live :class:`Node` s),
  ``node(name)``, ``net`` (the :class:`tests.harness.netns.HarnessNet`: ``bridge_ns``, ``subnet``);
- ``sh(netns, *cmd, timeout=30, check=False, input=None)``: run a command in a namespace;
- ``pod_sh(namespace, pod, *cmd)``: a host command in a pod's network namespace (``nsenter``);
  ``pod_pid(namespace, pod)``: a host pid of the pod's containers;
- ``kubectl(*args, input=None)`` -> CompletedProcess; ``kubectl_json(*args)`` -> parsed ``-o json``;
- ``async with cluster.client() as c``: a :class:`bosun.client.rest.Client` as the admin;
- ``add_node()`` / ``add_nodes(n)``: more nodes, returned once Ready;
- ``kill_node(name)``: a node's death (SIGKILL agent, shims and containers, delete its
  namespace and link); the Node object stays in the API and goes NotReady;
- ``partition(name)`` / ``heal(name)``: cut / restore the node's link to the bridge;
- ``restart_agent(name, kill=False, wait_ready=True)``: stop and start its agent, pods untouched;
- ``node_conditions()``, ``wait_ready(names)``; ``close()`` removes everything (idempotent).

Pods: the ``host`` pseudo-image runs the machine's own binaries read-only; ``curl`` and
``wget`` are there, and busybox without its applet links: ``busybox httpd|nc|nslookup|ping``
(in pods and in ``sh``). :func:`tests.harness.pods.pod` builds a one-container manifest
pinned to a node (``nodeName``, or a hostname ``nodeSelector`` with ``scheduled=True``),
:func:`tests.harness.pods.run_pods` creates pods and returns them once Running with an IP.
A node's agent log is ``Node.log_path``; the server's is ``/tmp/bosun-harness/ID/server.log``.

Cleanup: processes (tracked by cgroup ``bnhID``), namespaces, the root link, mounts and files
go in ``close()``, from the fixtures' finalizers, from atexit, on SIGTERM (turned into
KeyboardInterrupt when nobody else handles it) and, after a crash, by the sweep each new
harness runs first (see sweep.py).
"""

from tests.harness.cluster import HarnessError, NetCluster, Node

__all__ = ["HarnessError", "NetCluster", "Node"]
