"""`kubectl top` against `bosun up` (process runtime and crun): a pod that burns a CPU shows near one
core, a pod that holds memory shows at least what it holds, the node shows up, and both the
agent's and the API server's /metrics are Prometheus text with the expected series."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.helpers import RUNTIMES, bosun_up, processes_with

from bosun.api.quantity import parse_quantity

HOLD_MIB = 128


def _top(out: str) -> dict[str, list[str]]:
    rows = [line.split() for line in out.strip().splitlines()[1:]]
    return {r[0]: r[1:] for r in rows if r}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_kubectl_top_pods_and_nodes_and_prometheus(tmp_path: Path, runtime: str) -> None:
    marker = f"top-{os.getpid()}"
    with bosun_up(tmp_path, runtime=runtime) as up:
        kubectl, kc, agent_port = up.kubectl, up.kubeconfig, up.agent_port
        burn = kubectl("run", "burn", "--image=host", "--restart=Never", "--",
                       "python3", "-c", f"# {marker}\nwhile True: pass")
        assert burn.returncode == 0, burn.stderr
        hold = kubectl("run", "hold", "--image=host", "--restart=Never", "--", "python3", "-c",
                       f"# {marker}\nimport time\nb = bytearray({HOLD_MIB} * 2**20)\n"
                       "b[::4096] = b'x' * len(b[::4096])\ntime.sleep(600)")
        assert hold.returncode == 0, hold.stderr
        assert kubectl("wait", "--for=condition=Ready", "pod/burn", "pod/hold", "--timeout=30s").returncode == 0

        # Re-run `kubectl top` until the busy loop has been measured over a full window.
        pods: dict[str, list[str]] = {}
        deadline = time.time() + 30
        while time.time() < deadline:
            out = kubectl("top", "pods")
            if out.returncode == 0:
                pods = _top(out.stdout)
                # The control plane's metrics history reads summaries too: a cached one may
                # predate the hold process's allocation.
                if {"burn", "hold"} <= set(pods) and parse_quantity(pods["burn"][0]) >= parse_quantity("500m") \
                        and parse_quantity(pods["hold"][1]) >= HOLD_MIB * 2**20:
                    break
            time.sleep(1)
        assert {"burn", "hold"} <= set(pods), pods
        # One Python thread in a busy loop: up to one core, and on a busy test machine (load 10 on
        # 2 cores seen) as little as a fifth of one; still far above the idle pod.
        assert parse_quantity("100m") <= parse_quantity(pods["burn"][0]) <= parse_quantity("1100m"), pods
        assert parse_quantity(pods["hold"][0]) < parse_quantity(pods["burn"][0]), pods
        assert parse_quantity(pods["hold"][1]) >= HOLD_MIB * 2**20, pods

        containers = kubectl("top", "pod", "hold", "--containers")
        assert containers.returncode == 0, containers.stderr
        assert _top(containers.stdout)["hold"][0] == "hold"

        nodes = kubectl("top", "nodes")
        assert nodes.returncode == 0, nodes.stderr
        rows = _top(nodes.stdout)
        assert len(rows) == 1
        cpu, cpu_pct, mem, mem_pct = next(iter(rows.values()))
        assert parse_quantity(cpu) >= parse_quantity("500m") and cpu_pct.endswith("%")
        assert parse_quantity(mem) > HOLD_MIB * 2**20 and mem_pct.endswith("%")

        token = yaml.safe_load(Path(kc).read_text())["users"][0]["user"]["token"]
        agent = {f.name: f for f in text_string_to_metric_families(
            up.get(f"https://127.0.0.1:{agent_port}/metrics", token))}
        series = {s.labels.get("pod"): s.value for s in agent["container_cpu_usage_seconds"].samples}
        assert series["burn"] > series["hold"]
        mem_series = {s.labels.get("pod"): s.value for s in agent["container_memory_working_set_bytes"].samples}
        assert mem_series["hold"] >= HOLD_MIB * 2**20
        assert "node_cpu_usage_seconds" in agent and "node_memory_working_set_bytes" in agent

        server = yaml.safe_load(Path(kc).read_text())["clusters"][0]["cluster"]["server"]
        api = {f.name: f for f in text_string_to_metric_families(up.get(f"{server}/metrics", token))}
        assert any(s.labels.get("group") == "metrics.k8s.io" and s.labels.get("resource") == "pods"
                   for s in api["apiserver_request"].samples)
        assert api["etcd_request_duration_seconds"].samples
    assert processes_with(marker) == [], "a container process outlived bosun up"
