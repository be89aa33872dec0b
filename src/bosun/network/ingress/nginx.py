"""nginx as a process Bosun owns: check a candidate file, swap it in, reload, adopt, stop.

nginx runs as its own daemon (master and workers) from the agent, in the node's network
namespace, with everything under one state directory (configuration, pid file, error log,
temporary files). It outlives an agent restart on purpose: a restarted agent *adopts* the
master named by the pid file (checked against /proc, so a recycled pid is never signalled)
and serving never pauses; only :meth:`Nginx.remove` (the node going away: ``bosun up``'s
stop, the agent's cleanup) stops it and deletes its files.

Its processes form a tree (bosun.network.ingress.proctree: its own cgroup where one can be
made) that is killed whole before nginx is started again: workers orphaned by a master
killed alone would hold the ports, and the new nginx could not bind.

A candidate is tested with ``nginx -t`` before it replaces the running file; a reload
(SIGHUP) starts new workers on the new file while the old ones finish their requests, so no
connection is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from bosun.network.ingress.proctree import ProcessTree, alive, end, tree_for

log = logging.getLogger(__name__)
BINARY = "nginx"
STOP_WAIT = 10.0
# "... in /path/nginx.conf.new:123": the line nginx refused.
_LINE = re.compile(r" in (\S+):(\d+)")


@dataclass(frozen=True)
class Refusal:
    message: str
    line: int  # 0 when nginx named none


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Nginx:
    def __init__(self, state_dir: Path, tree: ProcessTree | None = None) -> None:
        self.dir = state_dir
        self.tree = tree or tree_for(state_dir)
        self.conf = state_dir / "nginx.conf"
        self.candidate = state_dir / "nginx.conf.new"
        self.pid_file = state_dir / "nginx.pid"
        self.error_log = state_dir / "error.log"

    @staticmethod
    def available() -> bool:
        return shutil.which(BINARY) is not None

    def _args(self, conf: Path) -> list[str]:
        return [BINARY, "-p", str(self.dir), "-e", str(self.error_log), "-c", str(conf)]

    async def _run(self, *args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE, start_new_session=True)
        _, err = await proc.communicate()
        return proc.returncode or 0, err.decode(errors="replace").strip()

    def master(self) -> int | None:
        """The running master started from our file (pid file checked against /proc)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid > 0 and alive(pid) and "nginx: master process" in _cmdline(pid) and str(self.conf) in _cmdline(pid):
            return pid
        return None

    async def test(self, text: str) -> Refusal | None:
        """Write ``text`` as the candidate and let nginx check it; None when it passes."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "tmp").mkdir(exist_ok=True)
        self.candidate.write_text(text)
        code, err = await self._run(*self._args(self.candidate), "-t", "-q")
        if code == 0:
            return None
        lines = [ln for ln in err.splitlines() if "[emerg]" in ln or "[alert]" in ln] or err.splitlines() or [err]
        first = lines[0].split("] ", 1)[-1] if "] " in lines[0] else lines[0]
        found = _LINE.search(first)
        line = int(found.group(2)) if found and found.group(1) == str(self.candidate) else 0
        message = _LINE.sub("", first).strip()
        message = re.sub(r"^\d+#\d+: ", "", message)
        return Refusal(message, line)

    async def apply(self) -> str:
        """Swap the tested candidate in and reload (or start) nginx; "" or why it did not start."""
        os.replace(self.candidate, self.conf)
        pid = self.master()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            return ""
        # A master killed alone leaves its workers holding the ports: nginx would not bind.
        if left := await end(self.tree, STOP_WAIT):
            return f"processes {left} of the previous nginx did not exit"
        self.pid_file.unlink(missing_ok=True)
        for stale in self.dir.glob("*.sock"):  # left by a master that was killed: nginx would not bind
            stale.unlink(missing_ok=True)
        try:
            command = self.tree.command(self._args(self.conf))
        except OSError as e:
            return f"nginx's cgroup could not be made: {e}"
        code, err = await self._run(*command)
        if code != 0:
            return err.splitlines()[-1] if err else f"nginx exited with {code}"
        # The command returns when nginx has forked its daemon, which writes the pid file a
        # moment later: wait for it, or the next sync would not find the master and start another.
        deadline = time.monotonic() + STOP_WAIT
        while self.master() is None:
            if time.monotonic() > deadline:
                return "nginx started but wrote no pid file"
            await asyncio.sleep(0.01)
        return ""

    async def remove(self) -> None:
        """Stop nginx (gracefully, then by force, orphaned workers too) and delete its files."""
        pid = self.master()
        if pid is not None:
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + STOP_WAIT
            while alive(pid) and time.monotonic() < deadline:  # noqa: ASYNC110 (another process: no event)
                await asyncio.sleep(0.05)
        if left := await end(self.tree, STOP_WAIT):
            log.error("ingress: nginx processes %s did not exit", left)
        self.tree.remove()
        shutil.rmtree(self.dir, ignore_errors=True)
