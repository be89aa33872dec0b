"""The processes the controllers benchmark runs: one `bosun server` with every controller and
the scheduler, and `bosun hollow` processes whose nodes live and die with the process.

Each part is its own OS process, as in a real cluster, so a hollow process killed with
SIGKILL is exactly a set of machines losing power: no goodbye, its Leases simply stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _procs import cpu_seconds, free_port, start_ready, stop_process

BOSUN = Path(sys.executable).parent / "bosun"


@dataclass
class CtrlCluster:
    """A server (every controller on, defaults for node failure) and named hollow processes."""

    data_dir: Path
    server: subprocess.Popen[bytes] | None = None
    hollows: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    dead: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "kubeconfig")

    def start_server(self, *extra: str) -> None:
        cmd = [str(BOSUN), "server", "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{free_port()}",
               *extra]
        self.server = start_ready(cmd, self.data_dir / "server.log", 60, "bosun server")

    def start_hollow(self, prefix: str, nodes: int, heartbeat: float, *extra: str) -> None:
        cmd = [str(BOSUN), "hollow", "--kubeconfig", self.kubeconfig, "--nodes", str(nodes),
               "--name-prefix", prefix, "--heartbeat", str(heartbeat), *extra]
        self.hollows[prefix] = start_ready(cmd, self.data_dir / f"hollow-{prefix}.log", 600, "bosun hollow")

    def kill_hollow(self, prefix: str) -> float:
        """SIGKILL one hollow process (its nodes die at once); returns the moment of the kill."""
        proc = self.hollows.pop(prefix)
        t = time.perf_counter()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self.dead[prefix] = proc
        return t

    @property
    def server_pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the server, each live hollow process and this process
        (a hollow process killed in between drops out of the difference, see :func:`cpu_delta`)."""
        out = {"server_cpu_s": cpu_seconds(self.server.pid) if self.server else 0.0,
               "bench_cpu_s": time.process_time()}
        for prefix, p in self.hollows.items():
            out[f"hollow:{prefix}"] = cpu_seconds(p.pid)
        return out

    def stop(self) -> None:
        for p in self.hollows.values():
            stop_process(p)
        if self.server is not None:
            stop_process(self.server, timeout=20)


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per process kind between two :meth:`CtrlCluster.cpu` readings."""
    out = {k: round(after[k] - before[k], 2) for k in ("server_cpu_s", "bench_cpu_s")}
    out["hollow_cpu_s"] = round(sum(after[k] - v for k, v in before.items()
                                    if k.startswith("hollow:") and k in after), 2)
    return out
