"""How drivers start a container's shim: forked by the node's zygote, or by exec when the
zygote cannot be reached.

Why a module: the oci and process drivers start shims the same way, and a shim forked by the
zygote is not the agent's child, so how the agent tells that it still runs (pid and start
time from /proc) is the same for both kinds; see :mod:`bosun.agent.runtime.zygote` for why
there is a zygote at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bosun.agent.runtime import spawn
from bosun.agent.runtime.base import DriverError, StartError
from bosun.agent.runtime.shim import proc_starttime, shim_argv
from bosun.agent.runtime.zygote import zygote_argv

SOCKET_NAME = "zygote.sock"
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
NOT_OURS = 255
"""Exit code :meth:`ShimProc.poll` gives for an ended shim that was not our child (its
status went to the zygote): the shim's own files say how its container ended."""


class ShimProc:
    """A started shim: the agent's child (exec fallback) or the zygote's."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None,
                 conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None) -> None:
        self.pid = pid
        self.popen = popen
        self.starttime = proc_starttime(pid)
        self._conn = conn

    async def wait_started(self, timeout: float) -> None:  # noqa: ASYNC109
        """Until a forked shim's command runs or could not start (its files then say which);
        at once for a shim started by exec, whose starter polls its files instead."""
        if self._conn is None:
            return
        reader, writer = self._conn
        self._conn = None
        try:
            await asyncio.wait_for(reader.readline(), timeout)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()

    @property
    def forked(self) -> bool:
        return self.popen is None

    def poll(self) -> int | None:
        """None while the shim runs, else its exit code (:data:`NOT_OURS` when unknown)."""
        if self.popen is not None:
            return self.popen.poll()
        if self.starttime and proc_starttime(self.pid) == self.starttime:
            return None
        return NOT_OURS


def exec_shim(state: Path) -> subprocess.Popen[bytes]:
    """The shim runs in its own session so that signals to the agent never reach it."""
    with (state / "shim.log").open("ab") as err:
        return subprocess.Popen(shim_argv(state),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, close_fds=True)


def _request(state: Path) -> bytes:
    return f"{os.path.abspath(state)}\n".encode()


class ShimStarter:
    """Starts shims through the node's zygote, which it starts on first use and again once
    it died (``use_zygote=False``: always by exec, as the only way before)."""

    def __init__(self, state_dir: Path, *, use_zygote: bool = True, start_timeout: float = 5.0) -> None:
        self.sock = state_dir / SOCKET_NAME
        self.use_zygote = use_zygote and os.environ.get("BOSUN_SHIM_ZYGOTE", "1") != "0"
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._starting: asyncio.Task[bool] | None = None

    @property
    def zygote_pid(self) -> int:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else 0

    async def start_container(
        self, cid: str, state: Path, shims: dict[str, subprocess.Popen[bytes]], *, running_file: str,
        start_error: Callable[[], str | None], within: float = 60.0,
    ) -> None:
        """A driver's ``start_container``: start the container's shim unless one was started
        before (a restarted agent, a repeated call), then wait until its command runs
        (``running_file`` appears in ``state``) or has ended, so that a command that could not
        start reaches the caller as StartError (``start_error()`` says why, or None when the
        command ran and ended) rather than as an exited container later."""
        if not (state / "spec.json").exists():
            raise DriverError("NotFound", f"container {cid} does not exist")
        if cid in shims or any((state / f).exists() for f in ("shim.pid", "pid", "exit.json")):
            return
        proc = await self.start(state)
        if proc.popen is not None:
            shims[cid] = proc.popen
        (state / "shim.pid").write_text(f"{proc.pid} {proc.starttime}")
        await proc.wait_started(within)  # a forked shim says when: then the first look below sees it
        deadline = time.monotonic() + within
        step = 0.005
        while time.monotonic() < deadline:
            if (state / running_file).exists():
                return
            if (state / "exit.json").exists():
                why = start_error()
                if why is not None:
                    raise StartError(why)
                return
            if (code := proc.poll()) is not None and not (state / "exit.json").exists():
                raise StartError(f"container shim exited with {code}; see {state / 'shim.log'}")
            await asyncio.sleep(step)
            step = min(step * 1.5, 0.05)  # 100 starting pods polling every 5 ms cost the loop
        raise StartError(f"container did not start within {within:g}s")

    async def start(self, state: Path) -> ShimProc:
        if self.use_zygote:
            pid, conn = await self._fork(state)
            if pid:
                return ShimProc(pid, conn=conn)
        popen = await spawn.in_pool(lambda: exec_shim(state))
        return ShimProc(popen.pid, popen)

    async def _fork(self, state: Path) -> tuple[int, _Conn | None]:
        for attempt in range(2):
            if not await self._ensure():
                return 0, None
            pid, conn = await self._ask(state)
            if pid or attempt:
                return pid, conn
            self._stop_zygote()  # alive but not answering: start a new one once
        return 0, None

    async def _ask(self, state: Path) -> tuple[int, _Conn | None]:
        """The forked shim's pid and the connection it reports its start on."""
        line_out = _request(state)
        path, dir_fd = str(self.sock), -1
        try:
            if len(path) > 100:  # too long for a unix socket address: reach it through its dir
                dir_fd = os.open(self.sock.parent, os.O_PATH)
                path = f"/proc/self/fd/{dir_fd}/{self.sock.name}"
            reader, writer = await asyncio.open_unix_connection(path)
        except OSError:
            return 0, None
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)
        try:
            writer.write(line_out)
            line = await asyncio.wait_for(reader.readline(), 10.0)
        except (OSError, TimeoutError):
            writer.close()
            return 0, None
        text = line.decode(errors="replace").strip()
        if not text.isdigit():
            writer.close()
            return 0, None
        return int(text), (reader, writer)

    async def _ensure(self) -> bool:
        if self._proc is not None and self._proc.poll() is None and self.sock.exists():
            return True
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._start_zygote())
        try:
            return await asyncio.shield(self._starting)
        except OSError:
            return False

    async def _start_zygote(self) -> bool:
        self._stop_zygote()
        with contextlib.suppress(OSError):
            self.sock.unlink()  # a zygote left by an earlier agent sees this and exits
        self.sock.parent.mkdir(parents=True, exist_ok=True)
        argv = zygote_argv(self.sock)
        proc = self._proc = await spawn.in_pool(lambda: subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, cwd="/"))
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.sock.exists():
                return True
            if proc.poll() is not None:
                return False
            await asyncio.sleep(0.005)
        return False

    def _stop_zygote(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1.0)

    def close(self) -> None:
        """Stop the zygote; the shims it forked go on."""
        if self._starting is not None:
            self._starting.cancel()
        self._stop_zygote()
        with contextlib.suppress(OSError):
            self.sock.unlink()
