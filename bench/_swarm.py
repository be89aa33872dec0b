"""Docker Swarm running the pod benchmark's workload, for the side-by-side figure of issue 5.

Needs Debian's `docker.io` (dockerd, containerd, runc) and `busybox-static`; nothing is pulled
(the machine has no Docker Hub): the image is a rootfs of /bin/busybox imported locally, so
both sides run `sleep 3600` from a local image.

The engine is private to the run: its own --data-root, --exec-root, pidfile and socket in a
temp dir, and what it changes on the host outside them (iptables rules and chains, the
docker0/docker_gwbridge links, cgroup dirs, /etc/docker/key.json, /run/docker, /run/containerd)
is recorded before it starts and removed after it stops, even when a step fails.

Two settings make the comparison fair rather than flattering: DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
so that each task does not first try (and fail) to pull from Docker Hub, as Bosun's `host` image
is never pulled; and services are created through the Engine API from this warm process (the
same request `docker service create --replicas N` sends), as Bosun's pods are created through
its API without a kubectl process start. A task counts as running when a poll of the manager
(every POLL_S) first shows it so: the analogue of Bosun's watcher seeing the pod Running.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from _stats import percentile

DOCKERD = "/usr/sbin/dockerd"
BUSYBOX = "/bin/busybox"
IMAGE = "bosun-bench/busybox:1"
API = "http://docker/v1.41"
POLL_S = 0.1
LINKS = ("docker0", "docker_gwbridge")
HOST_PATHS = ("/etc/docker/key.json", "/etc/docker", "/run/docker/plugins", "/run/docker",
              "/run/containerd/s", "/run/containerd")
"""Paths dockerd 20.10 and its shims create whatever --data-root/--exec-root say."""
CGROUP = Path("/sys/fs/cgroup")
DOCKER_RULE = re.compile(r"DOCKER|docker0|docker_gwbridge")


class SwarmUnavailable(RuntimeError):
    """The Swarm side cannot run here; the message says why, for the benchmark to print."""


def why_not() -> str | None:
    """Why the Swarm side cannot run at all (None when the pieces are installed)."""
    if os.geteuid() != 0:
        return "dockerd needs root"
    if not Path(DOCKERD).exists():
        return f"no Docker engine ({DOCKERD} missing: apt-get install -y docker.io)"
    if not Path(BUSYBOX).exists():
        return f"no {BUSYBOX} to build the image from (apt-get install -y busybox-static)"
    return None


@dataclass
class HostState:
    """What the host had before dockerd started, so cleanup removes only what it added."""

    rules: dict[str, set[str]] = field(default_factory=dict)
    links: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)
    cgroups: set[str] = field(default_factory=set)

    @classmethod
    def snapshot(cls) -> HostState:
        return cls({t: set(_iptables_rules(t)) for t in ("filter", "nat")},
                   {n for n in LINKS if Path(f"/sys/class/net/{n}").exists()},
                   {p for p in HOST_PATHS if os.path.lexists(p)},
                   {str(p) for p in CGROUP.glob("*/docker")})


def _iptables_rules(table: str) -> list[str]:
    res = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True, check=False)
    return res.stdout.splitlines()


@dataclass
class Engine:
    root: Path
    proc: subprocess.Popen[bytes]
    before: HostState
    session: aiohttp.ClientSession | None = None

    @property
    def sock(self) -> Path:
        return self.root / "docker.sock"

    async def api(self, method: str, path: str, body: Any = None, data: bytes | None = None,
                  limit_s: float = 60) -> Any:
        assert self.session is not None
        async with self.session.request(method, API + path, json=body, data=data,
                                        timeout=aiohttp.ClientTimeout(total=limit_s)) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise SwarmUnavailable(f"{method} {path}: {resp.status} {text.strip()[:300]}")
            return json.loads(text) if text.strip().startswith(("{", "[")) else text

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = (self.root / "dockerd.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        useful = [ln for ln in text if "level=error" in ln or "level=fatal" in ln or "failed" in ln]
        return "\n".join((useful or text)[-lines:]) or "(dockerd wrote nothing)"


async def start_engine(netns: str = "") -> Engine:
    """dockerd in a private temp root (and, with ``netns``, inside that network namespace, so
    its iptables rules, bridges and swarm ports stay there); returns once its API answers,
    else raises with its log."""
    reason = why_not()
    if reason:
        raise SwarmUnavailable(reason)
    other = _other_dockerd()
    if other:  # its links, rules and cgroups would be indistinguishable from ours
        raise SwarmUnavailable(f"another Docker engine runs here (pid {other}); stop it first")
    before = HostState.snapshot()
    root = Path(tempfile.mkdtemp(prefix="bosun-swarm-", dir="/tmp"))  # a short path: socket names are limited
    engine = Engine(root, _spawn_dockerd(root, netns), before)
    proc = engine.proc
    engine.session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(engine.sock)))
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            tail = engine.log_tail()
            await stop_engine(engine)
            raise SwarmUnavailable(f"dockerd exited with {proc.returncode}: {tail}")
        with contextlib.suppress(aiohttp.ClientError, OSError, SwarmUnavailable):
            await engine.api("GET", "/_ping", limit_s=2)
            return engine
        if time.monotonic() > deadline:
            tail = engine.log_tail()
            await stop_engine(engine)
            raise SwarmUnavailable(f"dockerd did not answer in 60 s: {tail}")
        await asyncio.sleep(0.2)


def _other_dockerd() -> int | None:
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "dockerd":
                return int(comm.parent.name)
    return None


def _spawn_dockerd(root: Path, netns: str = "") -> subprocess.Popen[bytes]:
    (root / "data").mkdir()
    (root / "exec").mkdir()
    env = dict(os.environ, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE="1")
    # nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroup mounts dockerd needs.
    prefix = ["nsenter", f"--net=/run/netns/{netns}", "--"] if netns else []
    with open(root / "dockerd.log", "wb") as log:
        return subprocess.Popen([*prefix, DOCKERD, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
                                 "--pidfile", str(root / "docker.pid"), "-H", f"unix://{root}/docker.sock"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def busybox_rootfs_tar() -> bytes:
    """A rootfs of one static busybox with the applets the workload uses."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, "bin/busybox")
        for applet in ("sh", "sleep", "true"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return buf.getvalue()


async def prepare(engine: Engine) -> dict[str, Any]:
    """Swarm init on loopback and the image import; seconds each took."""
    t0 = time.perf_counter()
    await engine.api("POST", "/swarm/init", {"ListenAddr": "127.0.0.1:2377", "AdvertiseAddr": "127.0.0.1"})
    t1 = time.perf_counter()
    repo, tag = IMAGE.rsplit(":", 1)
    await engine.api("POST", f"/images/create?fromSrc=-&repo={repo}&tag={tag}", data=busybox_rootfs_tar())
    info = await engine.api("GET", "/info")
    return {"swarm_init_s": round(t1 - t0, 3), "image_import_s": round(time.perf_counter() - t1, 3),
            "engine_version": info.get("ServerVersion"), "storage_driver": info.get("Driver"),
            "cgroup_version": info.get("CgroupVersion"), "runtime": info.get("DefaultRuntime")}


def _service_spec(name: str, n: int) -> dict[str, Any]:
    return {"Name": name, "Mode": {"Replicated": {"Replicas": n}},
            "TaskTemplate": {"ContainerSpec": {"Image": IMAGE, "Command": ["sleep", "3600"],
                                               "StopGracePeriod": 1_000_000_000}}}


def _ts(value: str) -> float:
    """Engine timestamps carry nanoseconds, which fromisoformat does not take."""
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return 0.0
    frac = (m.group(2) or ".0")[:7]
    return datetime.fromisoformat(m.group(1) + frac + m.group(3).replace("Z", "+00:00")).timestamp()


def _ms_stats(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    return {"p50_ms": round(percentile(v, 0.50) * 1000, 1), "p99_ms": round(percentile(v, 0.99) * 1000, 1),
            "max_ms": round((v[-1] if v else 0.0) * 1000, 1)}


async def _tasks(engine: Engine, service: str) -> list[dict[str, Any]]:
    filters = json.dumps({"service": [service], "desired-state": ["running"]})
    tasks: list[dict[str, Any]] = await engine.api("GET", f"/tasks?filters={filters}")
    return tasks


async def run_replicas(engine: Engine, n: int, memory: bool = False, wait_s: float = 300) -> dict[str, Any]:
    """`docker service create --replicas n` and wait until n tasks run; then remove it and
    wait until its containers are gone, so the next step starts from an idle engine."""
    name = f"podbench-{n}"
    seen: dict[str, float] = {}
    t0, wall0 = time.perf_counter(), time.time()
    created = await engine.api("POST", "/services/create", _service_spec(name, n))
    tasks: list[dict[str, Any]] = []
    failed: list[str] = []
    while len(seen) < n and time.perf_counter() - t0 < wait_s:
        await asyncio.sleep(POLL_S)
        tasks = await _tasks(engine, name)
        now = time.perf_counter()
        for t in tasks:
            state = (t.get("Status") or {}).get("State")
            if state == "running":
                seen.setdefault(t["ID"], now - t0)
            elif state in ("failed", "rejected") and t["ID"] not in failed:
                failed.append(t["ID"])
    engine_running = [_ts(t["Status"]["Timestamp"]) - wall0 for t in tasks if t["ID"] in seen]
    step = {"replicas": n, "running": len(seen), "failed_tasks": len(failed),
            "all_running_s": round(max(seen.values()), 3) if len(seen) >= n else None,
            "create_to_running": _ms_stats(list(seen.values())),
            "create_to_running_engine": _ms_stats(engine_running)}
    if failed:
        step["failure"] = next((t["Status"].get("Err") for t in tasks if t["Status"].get("Err")), None)
    if memory:
        await asyncio.sleep(2)
        step["memory"] = engine_memory(engine)
    step["remove_s"] = await remove_service(engine, created["ID"])
    return step


async def remove_service(engine: Engine, service_id: str, wait_s: float = 120) -> float:
    t0 = time.perf_counter()
    await engine.api("DELETE", f"/services/{service_id}")
    filters = json.dumps({"label": [f"com.docker.swarm.service.id={service_id}"]})
    while await engine.api("GET", f"/containers/json?all=1&filters={filters}"):
        if time.perf_counter() - t0 > wait_s:
            raise SwarmUnavailable(f"containers of service {service_id} still there after {wait_s} s")
        await asyncio.sleep(0.2)
    return round(time.perf_counter() - t0, 3)


def engine_memory(engine: Engine) -> dict[str, Any]:
    """RSS of dockerd and everything it started: containerd, and the shims (which daemonize
    away from it, so they are found by the exec-root on their command line) with their containers."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    todo, kb, count = [engine.proc.pid, *_pids_naming(engine.root)], 0, 0
    todo = list(dict.fromkeys(todo))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kb += int(line.split()[1])
                    count += 1
    return {"rss_mb": round(kb / 1024, 1), "processes": count}


async def stop_engine(engine: Engine) -> dict[str, Any]:
    """Leave the swarm, stop dockerd (and its containerd and shims), and remove what it left
    on the host. Returns what had to be removed by hand, for the results file."""
    report: dict[str, Any] = {}
    if engine.proc.poll() is None and engine.session is not None:
        # Services first (Swarm then stops their tasks in parallel), never container by container:
        # dockerd's own shutdown stops whatever still runs, in parallel too.
        with contextlib.suppress(Exception):
            for svc in await engine.api("GET", "/services", limit_s=10):
                await engine.api("DELETE", f"/services/{svc['ID']}", limit_s=10)
        with contextlib.suppress(Exception):
            await engine.api("POST", "/swarm/leave?force=1", limit_s=30)
    if engine.session is not None:
        await engine.session.close()
    if engine.proc.poll() is None:
        engine.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(engine.proc.wait, 60)
        except subprocess.TimeoutExpired:
            engine.proc.kill()
            engine.proc.wait()
            report["dockerd_killed"] = True
    report["exit_code"] = engine.proc.returncode
    report["processes_killed"] = _kill_leftovers(engine.root)
    report["unmounted"] = _unmount_under(engine.root)
    report["links_removed"] = _remove_links(engine.before)
    report["iptables_removed"] = _remove_rules(engine.before)
    report["host_paths_removed"] = _remove_paths(engine.before)
    if not _mounts_under(engine.root):
        shutil.rmtree(engine.root, ignore_errors=True)
    else:
        report["root_kept"] = str(engine.root)
    return report


def _pids_naming(root: Path) -> list[int]:
    """containerd and shims started for this engine name its exec-root on their command line."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(root).encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
    return pids


def _kill_leftovers(root: Path) -> list[str]:
    killed = []
    for pid in _pids_naming(root):
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            os.kill(pid, signal.SIGKILL)
            killed.append(name)
    return killed


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    return [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()
            if ln.split()[4].startswith(prefix)]


def _unmount_under(root: Path) -> list[str]:
    mounts = sorted(_mounts_under(root), key=len, reverse=True)
    for m in mounts:
        subprocess.run(["umount", "-l", m], capture_output=True, check=False)
    return mounts


def _remove_links(before: HostState) -> list[str]:
    removed = []
    for link in LINKS:
        if link not in before.links and Path(f"/sys/class/net/{link}").exists():
            subprocess.run(["ip", "link", "delete", link], capture_output=True, check=False)
            removed.append(link)
    return removed


def _remove_rules(before: HostState) -> list[str]:
    """Docker's rules that were not there before, then its chains (now empty)."""
    removed = []
    for table, old in before.rules.items():
        now = _iptables_rules(table)
        for rule in [r for r in now if r.startswith("-A ") and r not in old and DOCKER_RULE.search(r)]:
            args = shlex.split(rule)
            subprocess.run(["iptables", "-w", "-t", table, "-D", *args[1:]], capture_output=True, check=False)
            removed.append(f"{table}: {rule}")
        for chain in [r.split()[1] for r in now if r.startswith("-N DOCKER") and r not in old]:
            subprocess.run(["iptables", "-w", "-t", table, "-F", chain], capture_output=True, check=False)
            subprocess.run(["iptables", "-w", "-t", table, "-X", chain], capture_output=True, check=False)
            removed.append(f"{table}: chain {chain}")
    return removed


def _remove_paths(before: HostState) -> list[str]:
    removed = []
    for p in HOST_PATHS:  # files before their directories
        if p in before.paths or not os.path.lexists(p):
            continue
        with contextlib.suppress(OSError):
            if os.path.isdir(p):
                os.rmdir(p)  # only when empty: never take anything else's files with it
            else:
                os.unlink(p)
            removed.append(p)
    for cg in CGROUP.glob("*/docker"):
        if str(cg) not in before.cgroups:
            for sub in sorted((d for d in cg.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()  # cgroup dirs of containers that are gone are empty
            with contextlib.suppress(OSError):
                cg.rmdir()
                removed.append(str(cg))
    return removed


async def run_swarm(sizes: list[int]) -> dict[str, Any]:
    """The whole Swarm side: start, prepare, each size, memory at the largest, stop. Never
    raises for an engine that cannot run: the result then carries ``skipped`` with the reason."""
    try:
        engine = await start_engine()
    except SwarmUnavailable as e:
        return {"skipped": str(e)}
    result: dict[str, Any] = {"dockerd_flags": "private --data-root/--exec-root/socket, defaults otherwise "
                                               "(overlay2, iptables, bridge); DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1"}
    try:
        result.update(await prepare(engine))
        await asyncio.sleep(2)
        result["memory_idle"] = engine_memory(engine)
        steps: list[dict[str, Any]] = []
        result["steps"] = steps
        for n in sizes:
            step = await run_replicas(engine, n, memory=n == max(sizes))
            steps.append(step)
            print(step_line(step), flush=True)
    except (SwarmUnavailable, aiohttp.ClientError, OSError, TimeoutError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
        result["dockerd_log"] = engine.log_tail()
    finally:
        result["cleanup"] = await stop_engine(engine)
    return result


def step_line(s: dict[str, Any]) -> str:
    r, e = s["create_to_running"], s["create_to_running_engine"]
    return (f"{s['replicas']:>5} swarm  running {s['running']:>3}/{s['replicas']:<3} "
            f"all Running {s['all_running_s'] or '-':>7} s  running p50 {r['p50_ms']:>7} p99 {r['p99_ms']:>7} ms"
            f"  (engine timestamps p50 {e['p50_ms']} p99 {e['p99_ms']} ms)  remove {s['remove_s']} s")
