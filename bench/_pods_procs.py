"""The `bosun up` process a pod benchmark drives, and what it and its children cost in memory.

`bosun up` runs in its own process (as a user would start it) so that the benchmark's own
Python is not counted, and it is stopped with SIGINT (Ctrl-C) so that its drain path is the
one measured for leaving nothing behind.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _procs import ROOT, free_port

SHIM_MODULE = "bosun.agent.runtime.shim"
SHIM_FILE = "bosun/agent/runtime/shim.py"  # started by path with -S -I since the shim diet
ZYGOTE_FILE = "bosun/agent/runtime/zygote.py"  # forks the shims: its children are shims
RUNTIMES = ("runc", "crun")


@dataclass
class BosunUp:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    node_name: str
    ports: tuple[int, int] = (0, 0)  # API server, node agent

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "kubeconfig")

    def stop(self, timeout: float = 90) -> int | None:
        """Ctrl-C, as a user stops it; SIGKILL only if the drain hangs (then say so)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


def start_bosun_up(data_dir: Path, node_name: str, runtime: str = "oci", timeout: float = 60,
                   ports: tuple[int, int] | None = None, env: dict[str, str] | None = None,
                   tree: Path | None = None) -> BosunUp:
    """`bosun up` on free loopback ports (or ``ports``: API, agent, as a restart keeps them)
    with a fresh data dir; returns once it prints ``ready``. ``tree``: another checkout's
    (with its own .venv) instead of this one's, for a baseline in the same run."""
    data_dir.mkdir(parents=True, exist_ok=True)
    bosun = tree / ".venv" / "bin" / "bosun" if tree else Path(sys.executable).parent / "bosun"
    api, agent = ports or (free_port(), free_port())
    cmd = [str(bosun), "up", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{api}",
           "--agent-port", str(agent), "--name", node_name, "--runtime", runtime]
    with open(data_dir / "up.log", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=tree or ROOT, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    out = b""
    while b"\nready" not in out:
        left = deadline - time.monotonic()
        if proc.poll() is not None or left <= 0:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"bosun up did not start: {out.decode()!r} "
                               f"{(data_dir / 'up.log').read_text()[-2000:]}")
        ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
        if ready:
            out += os.read(proc.stdout.fileno(), 4096)
    return BosunUp(proc, data_dir, node_name, (api, agent))


@dataclass
class ProcInfo:
    pid: int
    ppid: int
    argv: list[str]
    rss_kb: int
    pss_kb: int


def _proc_info(pid: int) -> ProcInfo | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(fields.get("VmRSS", "0 kB").split()[0])
    ppid = int(fields.get("PPid", "0").strip())
    pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
                break
    except OSError:
        pass
    return ProcInfo(pid, ppid, [a.decode(errors="replace") for a in argv if a], rss, pss)


def all_processes() -> list[ProcInfo]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _proc_info(int(entry))) is not None:
            out.append(info)
    return out


def _kind(p: ProcInfo) -> str:
    if any(a.endswith(ZYGOTE_FILE) for a in p.argv):
        return "zygote"
    if SHIM_MODULE in p.argv or any(a.endswith(SHIM_FILE) for a in p.argv):
        return "shims"
    if p.argv and os.path.basename(p.argv[0]) in RUNTIMES:
        return "runtime"
    return "other"


def memory_breakdown(root_pid: int) -> dict[str, dict[str, float]]:
    """RSS and PSS in MB of `bosun up` itself, its container shims, the runc/crun processes
    under the shims (none once started: they run detached), and the containers' own
    processes (children of a shim, or of a runtime in the foreground).

    RSS sums count shared pages (libpython, runc's text) once per process, so PSS (each
    shared page divided among its users) is given too: it is what the node really pays.
    """
    procs = {p.pid: p for p in all_processes()}
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    groups: dict[str, list[ProcInfo]] = {"bosun": [], "zygote": [], "shims": [], "runtime": [], "containers": []}

    def walk(pid: int, inside_runtime: bool) -> None:
        for child in children.get(pid, []):
            p = procs[child]
            kind = _kind(p)
            if kind == "zygote":
                kind = "shims" if _kind(procs[pid]) == "zygote" else "zygote"
                groups[kind].append(p)
                walk(child, kind == "shims")
                continue
            if inside_runtime and kind != "runtime":
                groups["containers"].append(p)
            elif kind in ("shims", "runtime"):
                groups[kind].append(p)
            else:  # short-lived helpers of bosun itself (CNI plugins, ip, probes' exec)
                groups["bosun"].append(p)
            walk(child, inside_runtime or kind in ("runtime", "shims"))

    if root_pid in procs:
        groups["bosun"].append(procs[root_pid])
        walk(root_pid, False)
    return {
        name: {
            "processes": len(ps),
            "rss_mb": round(sum(p.rss_kb for p in ps) / 1024, 1),
            "pss_mb": round(sum(p.pss_kb for p in ps) / 1024, 1),
        }
        for name, ps in groups.items()
    } | {"bosun_process_only": {
        "rss_mb": round(procs[root_pid].rss_kb / 1024, 1) if root_pid in procs else 0.0,
        "pss_mb": round(procs[root_pid].pss_kb / 1024, 1) if root_pid in procs else 0.0,
    }}


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU of `bosun up` and every process below it (zygote, shims, containers), each with
    the CPU of the children it already reaped (CNI plugins, crun): what the node spent,
    whatever else shares the machine. Shims the zygote's kernel auto-reaped are not counted
    (none end while pods start)."""
    tck = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            f = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(f[1]), sum(int(x) for x in f[11:15]) / tck)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo += children.get(pid, [])
    return total


def leftovers(data_dir: Path) -> list[str]:
    """Processes still running that belong to this cluster: shims and runtimes whose command
    line names its data dir (the shim's state dir and runc's --root both live under it)."""
    marker = str(data_dir)
    return [f"{p.pid} {' '.join(p.argv)[:200]}" for p in all_processes()
            if p.pid != os.getpid() and any(marker in a for a in p.argv)]


def runtime_state_leftovers(data_dir: Path) -> list[str]:
    """Containers the runtime still knows under this cluster's state root."""
    state = data_dir / "agent" / "runtime" / "oci" / "runtime-state"  # the oci driver's root
    if not state.is_dir():
        return []
    out = []
    for rt in RUNTIMES:
        path = f"/usr/sbin/{rt}" if os.path.exists(f"/usr/sbin/{rt}") else f"/usr/bin/{rt}"
        if not os.path.exists(path):
            continue
        res = subprocess.run([path, "--root", str(state), "list", "-q"], capture_output=True, text=True,
                             check=False)
        out += [f"{rt}: {line}" for line in res.stdout.split()]
    return out


def cpu_by_kind(root_pid: int) -> dict[str, float]:
    """CPU seconds so far of `bosun up`'s tree, split by who spent it: ``bosun`` (the process:
    API server, scheduler, controllers, agent), ``bosun_helpers`` (the children it reaped: CNI
    plugins, ``ip``, probes' runtime exec), ``zygote``, ``shims`` (themselves),
    ``shim_runtime`` (the ``crun run`` each shim reaped) and ``containers``. Differences of
    two calls say where a step's CPU went, robust to other work sharing the machine. What a
    process reaped is in clock ticks truncated per process: ``shim_runtime`` undercounts."""
    tck = os.sysconf("SC_CLK_TCK")
    procs = {p.pid: p for p in all_processes()}
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)

    def times(pid: int) -> tuple[float, float]:
        """(own, reaped children's). Own from schedstat (ns) when single-threaded: /proc's
        clock ticks truncate each small process (a shim) to 0."""
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            own = (int(f[11]) + int(f[12])) / tck
            if int(f[17]) == 1:
                own = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0, 0.0
        return own, (int(f[13]) + int(f[14])) / tck

    out = dict.fromkeys(("bosun", "bosun_helpers", "zygote", "shims", "shim_runtime", "containers"), 0.0)
    if root_pid not in procs:
        return out
    own, reaped = times(root_pid)
    out["bosun"], out["bosun_helpers"] = own, reaped
    todo = [(c, "bosun_helpers") for c in children.get(root_pid, [])]
    while todo:
        pid, parent_kind = todo.pop()
        info = procs.get(pid)
        if info is None:
            continue
        kind = _kind(info)
        own, reaped = times(pid)
        if kind == "zygote":
            kind = "shims" if parent_kind in ("zygote", "shims") else "zygote"
        elif parent_kind in ("shims", "shim_runtime", "containers"):
            kind = "shim_runtime" if kind == "runtime" else "containers"
        elif kind not in ("shims", "runtime"):
            kind = "bosun_helpers"
        elif kind == "runtime":
            kind = "bosun_helpers"  # an exec the agent runs (probes)
        out[kind] += own
        # what a process reaped is its helpers': a shim's is its `crun run`, the zygote's ended shims
        out[{"shims": "shim_runtime", "zygote": "shims"}.get(kind, kind)] += reaped
        todo += [(c, kind) for c in children.get(pid, [])]
    return {k: round(v, 3) for k, v in out.items()}


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far (/proc/stat, all cores). Busy:
    not idle, what a step cost including what no process of ours is charged with (the
    runtime processes a shim reaped, kernel workers freeing cgroups) and anything else that
    ran meanwhile. Stolen: time the hypervisor gave our virtual CPUs to someone else, which
    lengthens a step's wall time without showing up anywhere else."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tck = os.sysconf("SC_CLK_TCK")
    steal = ticks[7] if len(ticks) > 7 else 0
    busy = ticks[0] + ticks[1] + ticks[2] + sum(ticks[5:7])  # user nice system irq softirq (guest is in user)
    return busy / tck, steal / tck
