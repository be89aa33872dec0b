"""The ``process`` driver: each container is a plain host process (Nomad's raw_exec).

No isolation at all: it exists so that Bosun runs anywhere (no root, no crun) and for
development and tests. The sandbox is a directory, the pod IP is the node IP, every image
name means "the host's userland", and volume mounts cannot be applied (the files are
still prepared under the pod directory, where the process can read them).

Each container runs under :mod:`bosun.agent.runtime.shim`, so it survives the agent and
everything about it is on disk: ``<root>/containers/<id>/`` (config.json, spec.json, pid,
exit.json) and ``<root>/sandboxes/<pod uid>.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import shutil
import signal
import struct
import subprocess
import termios
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bosun.agent.runtime.base import (
    HOST_IMAGE,
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    ContainerConfig,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    DriverError,
    ImageInfo,
    PullPolicy,
    SandboxConfig,
    SandboxStatus,
    StartError,
)
from bosun.agent.runtime.disk_state import (
    alive,
    created_status,
    hosts_file,
    read_json,
    sandbox_from,
    set_exited,
    set_lost,
    shim_alive,
    shim_pid,
)
from bosun.agent.runtime.exit_watch import ExitWatch
from bosun.agent.runtime.shim_attach import ShimAttachment, attach_shim, interactive_spec
from bosun.agent.runtime.shim_start import ShimStarter

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _group_pids(pgid: int) -> list[int]:
    """Processes of one container (its process group), for stats."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            out.append(int(entry.name))
    return out


def _group_usage(pgid: int) -> tuple[int, int]:
    """(cpu ns, working-set bytes) summed over a process group, from /proc."""
    cpu_ticks = 0
    rss_pages = 0
    for p in _group_pids(pgid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            rss = Path(f"/proc/{p}/statm").read_text().split()
        except OSError:
            continue
        cpu_ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        rss_pages += int(rss[1]) - int(rss[2])  # resident minus shared ~ working set
    return cpu_ticks * 1_000_000_000 // _CLK_TCK, rss_pages * os.sysconf("SC_PAGE_SIZE")


async def _poll(done: Callable[[], bool], seconds: float, step: float = 0.02) -> bool:
    """Check ``done`` until it holds or ``seconds`` pass (files written by another process
    have no event to wait on)."""
    deadline = time.monotonic() + max(seconds, 0.0)
    for _ in iter(int, 1):
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return False


class _HostExec:
    """:class:`~bosun.agent.runtime.base.ExecProcess` over an asyncio subprocess."""

    def __init__(self, proc: asyncio.subprocess.Process, merged: bool) -> None:
        self._proc = proc
        self.stdin = proc.stdin
        assert proc.stdout is not None
        self.stdout: asyncio.StreamReader = proc.stdout
        self.stderr = None if merged else proc.stderr

    async def wait(self) -> int:
        code = await self._proc.wait()
        return 128 - code if code < 0 else code

    def resize(self, cols: int, rows: int) -> None:
        return None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)


class _PtyReaderProtocol(asyncio.StreamReaderProtocol):
    """Reading a pty master fails with EIO once the last process holding the terminal has
    gone: for a reader that is simply the end of the output."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(None if isinstance(exc, OSError) else exc)


class _PtyExec:
    """An exec with a terminal (``kubectl exec -t``): the command runs on the slave side of a
    new pty as its controlling terminal, so job control, line editing and SIGWINCH work.

    The command starts on the event loop's next turn rather than inside :meth:`spawn`: a
    caller that resizes right after ``exec`` returns (the client's terminal size) is then
    certain to do so before the command can ask for the size.
    """

    def __init__(self, master: int, stdout: asyncio.StreamReader, stdin: asyncio.StreamWriter | None) -> None:
        self._master = master
        self._proc: asyncio.subprocess.Process | None = None
        self._start: asyncio.Task[None] | None = None
        self._killed = False
        self.stdout = stdout
        self.stdin = stdin
        self.stderr: asyncio.StreamReader | None = None

    def resize(self, cols: int, rows: int) -> None:
        if cols > 0 and rows > 0:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    async def wait(self) -> int:
        assert self._start is not None
        await self._start
        if self._proc is None:
            return 127
        code = await self._proc.wait()
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        self._killed = True
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    @classmethod
    async def spawn(cls, command: list[str], cwd: str | None, env: dict[str, str] | None,
                    stdin: bool) -> _PtyExec:
        if not _executable(command[0], cwd, (env or os.environ).get("PATH") or DEFAULT_PATH):
            raise DriverError("ExecError", f"exec {command[0]!r} failed: No such file or directory")
        master, slave = pty.openpty()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        # The read transport owns ``master`` (closed when output ends); the writer gets a dup.
        await loop.connect_read_pipe(lambda: _PtyReaderProtocol(reader), os.fdopen(master, "rb", 0))
        writer = None
        if stdin:
            w_transport, w_protocol = await loop.connect_write_pipe(
                lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), os.fdopen(os.dup(master), "wb", 0))
            writer = asyncio.StreamWriter(w_transport, w_protocol, None, loop)
        self = cls(master, reader, writer)
        self._start = asyncio.create_task(self._run(command, cwd, env, slave), name="pty-exec-start")
        return self

    async def _run(self, command: list[str], cwd: str | None, env: dict[str, str] | None, slave: int) -> None:
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *command, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                start_new_session=True, preexec_fn=_take_controlling_tty)
            if self._killed:  # the caller gave up before the command had started
                self.kill()
        except OSError as e:
            # Checked in spawn already; a race (file removed, not executable) shows on the terminal.
            os.write(slave, f"exec {command[0]!r} failed: {e.strerror or e}\r\n".encode())
        finally:
            os.close(slave)  # the reader sees EOF once the command's copies are gone too


def _executable(name: str, cwd: str | None, path: str) -> bool:
    if "/" in name:
        return os.access(os.path.join(cwd or ".", name), os.X_OK)
    return shutil.which(name, path=path) is not None


def _take_controlling_tty() -> None:
    """Runs in the child after setsid(): make its stdin (the pty slave) its terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class ProcessDriver:
    name = "process"

    def __init__(self, root: Path, node_ip: str) -> None:
        self.root = root
        self.node_ip = node_ip
        self._starter = ShimStarter(root)
        self._shims: dict[str, subprocess.Popen[bytes]] = {}  # shims started by exec: our children
        self._exits = ExitWatch()  # statuses kept until the shim exits: the relist reads no files

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        (self.root / "containers").mkdir(parents=True, exist_ok=True)
        (self.root / "sandboxes").mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        self._exits.close()
        self._reap()
        self._starter.close()

    def _reap(self) -> None:
        # Our shims are our children while we live: collect finished ones (no zombies).
        for cid, proc in list(self._shims.items()):
            if proc.poll() is not None:
                del self._shims[cid]

    # -- images ---------------------------------------------------------------------------------

    async def ensure_image(self, image: str, policy: PullPolicy) -> ImageInfo:
        # Every image name means "run on the host"; the host image has nothing to pull.
        return ImageInfo(name=image or HOST_IMAGE, id=HOST_IMAGE,
                         env=[("PATH", os.environ.get("PATH") or DEFAULT_PATH)])

    # -- sandboxes ------------------------------------------------------------------------------

    def _sandbox_path(self, sandbox_id: str) -> Path:
        return self.root / "sandboxes" / f"{sandbox_id}.json"

    async def run_sandbox(self, config: SandboxConfig) -> SandboxStatus:
        path = self._sandbox_path(config.pod_uid)
        existing = read_json(path)
        if existing and existing.get("ready"):
            return sandbox_from(existing)
        config.pod_dir.mkdir(parents=True, exist_ok=True)
        hosts = config.pod_dir / "etc-hosts"
        hosts.write_text(hosts_file(self.node_ip, config.hostname, config.host_aliases, config.fqdn))
        status = SandboxStatus(id=config.pod_uid, pod_uid=config.pod_uid, ready=True, ip=self.node_ip,
                               ips=[self.node_ip], netns_path=None, hostname=config.hostname,
                               hosts_path=hosts, labels=dict(config.labels))
        data = asdict(status)
        data["hosts_path"] = str(hosts)
        path.write_text(json.dumps(data))
        return status

    async def stop_sandbox(self, sandbox_id: str) -> None:
        path = self._sandbox_path(sandbox_id)
        data = read_json(path)
        if data and data.get("ready"):
            data["ready"] = False
            path.write_text(json.dumps(data))

    async def remove_sandbox(self, sandbox_id: str) -> None:
        self._sandbox_path(sandbox_id).unlink(missing_ok=True)

    async def list_sandboxes(self) -> list[SandboxStatus]:
        out = []
        for path in sorted((self.root / "sandboxes").glob("*.json")):
            data = read_json(path)
            if data:
                out.append(sandbox_from(data))
        return out

    # -- containers -----------------------------------------------------------------------------

    def _dir(self, container_id: str) -> Path:
        return self.root / "containers" / container_id

    async def create_container(self, sandbox: SandboxStatus, config: ContainerConfig,
                               image: ImageInfo) -> str:
        command = (config.command or image.entrypoint) + (
            config.args if (config.command or config.args) else image.cmd)
        if not command:
            raise StartError(f"no command specified for container {config.name!r}")
        env = dict(image.env)
        env.update(config.env)
        env.setdefault("HOSTNAME", sandbox.hostname)
        cid = uuid.uuid4().hex[:16]
        d = self._dir(cid)
        d.mkdir(parents=True)
        labels = dict(config.labels)
        labels.update({LABEL_POD_UID: config.pod_uid, LABEL_CONTAINER_NAME: config.name,
                       LABEL_ATTEMPT: str(config.attempt)})
        (d / "spec.json").write_text(json.dumps({
            "command": command, "env": env, "working_dir": config.working_dir or "",
            "log_path": str(config.log_path), "log_max_bytes": config.log_max_bytes,
            "log_max_files": config.log_max_files, **interactive_spec(config, console=False)}))
        (d / "config.json").write_text(json.dumps({
            "id": cid, "pod_uid": config.pod_uid, "name": config.name, "attempt": config.attempt,
            "image": config.image, "image_id": image.id, "created_at": time.time(),
            "log_path": str(config.log_path), "labels": labels, "working_dir": config.working_dir,
            "env": env}))
        return cid

    async def start_container(self, container_id: str) -> None:
        d = self._dir(container_id)

        def start_error() -> str | None:
            done = read_json(d / "exit.json")
            if done is None or done.get("reason") != "StartError":
                return None
            return str(done.get("message") or "failed to start")

        self._exits.forget(container_id)
        try:
            await self._starter.start_container(container_id, d, self._shims, running_file="pid",
                                                start_error=start_error, within=30.0)
        finally:
            self._exits.started(container_id)

    def _pid(self, container_id: str) -> tuple[int, str, float]:
        try:
            pid, starttime, started = (self._dir(container_id) / "pid").read_text().split()
            return int(pid), starttime, float(started)
        except (OSError, ValueError):
            return 0, "", 0.0

    def _shim_alive(self, container_id: str) -> bool:
        return shim_alive(self._shims.get(container_id), self._dir(container_id))

    def _status(self, container_id: str) -> ContainerStatus | None:
        kept = self._exits.get(container_id)
        if kept is not None:
            return kept
        st = self._read_status(container_id)
        if st is None:
            self._exits.forget(container_id)
        elif st.state == ContainerState.EXITED and (self._dir(container_id) / "exit.json").exists():
            self._exits.keep_exited(st)  # a lost shim's guess (no exit.json) is read again
        elif st.state == ContainerState.RUNNING and (
                shim := shim_pid(self._shims.get(container_id), self._dir(container_id))) is not None:
            self._exits.keep_running(st, *shim)
        else:
            self._exits.forget(container_id)
        return st

    async def changed(self) -> set[str]:
        """See ContainerEvents: pods one of whose containers' shims ended."""
        return await self._exits.changed()

    def _read_status(self, container_id: str) -> ContainerStatus | None:
        d = self._dir(container_id)
        cfg = read_json(d / "config.json")
        if cfg is None:
            return None
        st = created_status(container_id, cfg)
        done = read_json(d / "exit.json")
        pid, starttime, started = self._pid(container_id)
        if done is not None:
            set_exited(st, done, started)
        elif pid:
            st.started_at = started
            if alive(pid, starttime) or self._shim_alive(container_id):
                st.state = ContainerState.RUNNING
            elif (d / "exit.json").exists():
                # The shim wrote exit.json and ended between our first read and the check.
                return self._read_status(container_id)
            else:
                set_lost(st)
        elif self._shim_alive(container_id):
            st.state = ContainerState.RUNNING
        return st

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        self._reap()
        return self._status(container_id)

    async def list_containers(self, pod_uid: str | None = None) -> list[ContainerStatus]:
        self._reap()
        out = []
        for entry in os.scandir(self.root / "containers"):
            st = self._status(entry.name)
            if st is not None and (pod_uid is None or st.pod_uid == pod_uid):
                out.append(st)
        return out

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        d = self._dir(container_id)
        if (d / "exit.json").exists() or not (d / "config.json").exists():
            return
        pid, starttime, _ = self._pid(container_id)
        if not pid:
            # Created but never started (or the shim is still starting it): wait briefly.
            for _ in range(200):
                if self._pid(container_id)[0] or (d / "exit.json").exists() or not self._shim_alive(container_id):
                    break
                await asyncio.sleep(0.01)
            pid, starttime, _ = self._pid(container_id)
            if not pid:
                return
        for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10.0)):
            if not alive(pid, starttime):
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            if await _poll(lambda: (d / "exit.json").exists(), wait):
                break
        # The shim writes exit.json right after the process ends; give it a moment.
        for _ in range(250):
            if (d / "exit.json").exists() or not self._shim_alive(container_id):
                break
            await asyncio.sleep(0.02)
        self._exits.forget(container_id)
        self._reap()

    async def remove_container(self, container_id: str) -> None:
        d = self._dir(container_id)
        if not d.exists():
            self._exits.forget(container_id)
            return
        st = self._status(container_id)
        if st is not None and st.state == ContainerState.RUNNING:
            await self.stop_container(container_id, 0)
        self._shims.pop(container_id, None)
        self._exits.forget(container_id)
        shutil.rmtree(d, ignore_errors=True)

    # -- exec and stats -------------------------------------------------------------------------

    async def exec(self, container_id: str, command: list[str], *, tty: bool = False,
                   stdin: bool = False) -> _HostExec | _PtyExec:
        st = self._status(container_id)
        if st is None or st.state != ContainerState.RUNNING:
            raise DriverError("NotRunning", f"container {container_id} is not running")
        cfg = read_json(self._dir(container_id) / "config.json") or {}
        if not command:
            raise DriverError("ExecError", "no command given")
        cwd, env = cfg.get("working_dir") or None, cfg.get("env") or None
        try:
            if tty:
                return await _PtyExec.spawn(command, cwd, env, stdin)
            proc = await asyncio.create_subprocess_exec(
                *command, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env, start_new_session=True)
        except OSError as e:
            raise DriverError("ExecError", f"exec {command[0]!r} failed: {e.strerror or e}") from e
        return _HostExec(proc, merged=False)

    async def attach(self, container_id: str) -> ShimAttachment | None:
        return await attach_shim(self._dir(container_id))

    async def stats(self, container_id: str) -> ContainerStats | None:
        pid, starttime, _ = self._pid(container_id)
        if not alive(pid, starttime):
            return None
        # Walks /proc: off the event loop, which serves pods while a node with many is sampled.
        cpu_ns, memory = await asyncio.to_thread(_group_usage, pid)
        return ContainerStats(container_id=container_id, timestamp=time.time(), cpu_usage_ns=cpu_ns,
                              memory_working_set_bytes=memory)
