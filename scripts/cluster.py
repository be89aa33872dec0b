#!/usr/bin/env python3
"""A multi-node Bosun cluster on this machine, by hand: each node agent in a network namespace.

  sudo .venv/bin/python scripts/cluster.py up --nodes 3   # stays in the foreground; Ctrl-C removes it
  sudo .venv/bin/python scripts/cluster.py status         # clusters of this machine, how to reach them
  sudo .venv/bin/python scripts/cluster.py down [ID]      # remove one (or, without ID, every one)

`up` builds what the test harness builds (tests/harness): a bosun server listening on an
address of a private bridge network (a random /24 of 198.18.0.0/15), N `bosun agent`s each
started with `ip netns exec` in a namespace of its own, and a client namespace standing for a
user outside the cluster. It prints the kubeconfig and how to run commands in a node or the
client, then waits. Ctrl-C or SIGTERM removes everything (processes, namespaces, links,
cgroups, files). `down ID` removes that cluster (asking its live `up` to stop first);
`down` alone removes those left by killed runs and those of running `up`s, never a cluster
of a running test. Any new `up` (or test) also sweeps what a killed run left.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import NetCluster
from tests.harness.sweep import ROOT, harness_ids, owner_alive, teardown


def _usage(cluster: NetCluster) -> str:
    first = cluster.nodes[0] if cluster.nodes else None
    lines = [f"bosun cluster {cluster.hid}: API server {cluster.url}, {len(cluster.nodes)} node(s)",
             f"  export KUBECONFIG={cluster.kubeconfig}",
             "  kubectl get nodes -o wide"]
    for n in cluster.nodes:
        lines.append(f"  node {n.name}: {n.ip}  ip netns exec {n.netns} sh    (log: {n.log_path})")
    lines.append(f"  client: {cluster.client_ip}  ip netns exec {cluster.client_ns} sh")
    if first is not None:
        lines.append(f"  e.g. ip netns exec {cluster.client_ns} busybox wget -qO- http://{first.ip}:NODEPORT/")
    return "\n".join(lines)


def up(args: argparse.Namespace) -> int:
    cluster = NetCluster(nodes=args.nodes, node_monitor_grace_period=args.grace,
                         pod_eviction_timeout=args.eviction, log_level=args.log_level,
                         server_args=args.server_arg, agent_args=args.agent_arg)
    started = time.monotonic()
    try:
        cluster.start()
        print(_usage(cluster))
        print(f"up in {time.monotonic() - started:.1f} s; Ctrl-C removes it", flush=True)
        print("ready", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stopping = time.monotonic()
        cluster.close()
        print(f"removed cluster {cluster.hid} in {time.monotonic() - stopping:.1f} s", flush=True)
    return 0


def _state(hid: str) -> dict[str, object]:
    try:
        data: dict[str, object] = json.loads((ROOT / hid / "state.json").read_text())
        return data
    except (OSError, ValueError):
        return {}


def status(args: argparse.Namespace) -> int:
    ids = sorted(harness_ids())
    if not ids:
        print("no cluster on this machine")
    for hid in ids:
        st = _state(hid)
        alive = owner_alive(hid)
        print(f"{hid}: {'running' if alive else 'left by a dead run (scripts/cluster.py down removes it)'}")
        if st:
            print(f"  export KUBECONFIG={st['kubeconfig']}   # {st['url']}")
            for n in st.get("nodes", []):  # type: ignore[attr-defined]
                print(f"  node {n['name']}: {n['ip']}  ip netns exec {n['netns']} sh")
            print(f"  client: {st['client_ip']}  ip netns exec {st['client_ns']} sh")
    return 0


def _started_here(hid: str) -> bool:
    """The cluster's owner is a `scripts/cluster.py up` (not, say, someone's test run)."""
    try:
        pid = (ROOT / hid / "owner").read_text().split()[0]
        return "cluster.py" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, IndexError):
        return False


def down(args: argparse.Namespace) -> int:
    """With an ID: that cluster. Without: those of dead runs and of `up`s of this script
    (a cluster of a running test belongs to that test)."""
    ids = [args.id] if args.id else [h for h in sorted(harness_ids()) if not owner_alive(h) or _started_here(h)]
    if args.id and args.id not in harness_ids():
        print(f"error: no cluster {args.id} on this machine", file=sys.stderr)
        return 1
    for hid in ids:
        if owner_alive(hid):
            pid = int((ROOT / hid / "owner").read_text().split()[0])
            os.kill(pid, signal.SIGTERM)  # the `up` (or test run) removes its own cluster
            deadline = time.monotonic() + 30
            while owner_alive(hid) and time.monotonic() < deadline:
                time.sleep(0.2)
        teardown(hid)
        print(f"removed {hid}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start a cluster and keep it until Ctrl-C")
    p_up.add_argument("--nodes", type=int, default=3)
    p_up.add_argument("--grace", type=float, default=4.0, help="node monitor grace period, seconds")
    p_up.add_argument("--eviction", type=float, default=2.0, help="pod eviction timeout, seconds")
    p_up.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p_up.add_argument("--server-arg", action="append", default=[], metavar="FLAG",
                      help="extra flag for bosun server, repeatable (e.g. --server-arg=--cluster-cidr=10.60.0.0/16)")
    p_up.add_argument("--agent-arg", action="append", default=[], metavar="FLAG",
                      help="extra flag for every bosun agent, repeatable")
    sub.add_parser("status", help="list the clusters of this machine")
    p_down = sub.add_parser("down", help="remove a cluster (all without ID)")
    p_down.add_argument("id", nargs="?", default="")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("error: network namespaces and cgroups need root", file=sys.stderr)
        return 1
    if args.command == "up" and args.nodes < 1:
        print("error: --nodes must be at least 1", file=sys.stderr)
        return 2
    return {"up": up, "status": status, "down": down}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
