"""``kubectl exec``, exec probes and hooks in an OCI container: ``<runtime> exec`` as a child.

With a tty the runtime gets a pseudo-terminal we own as its stdio: it makes the container's
terminal and copies ours at the start. crun does not follow later size changes of ours, so
``resize`` also sets the size on the container's terminal itself, the command's stdin (found
through the pid file the runtime writes): the command gets its SIGWINCH from the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import termios
import uuid
from pathlib import Path

from bosun.agent.runtime import spawn
from bosun.agent.runtime.base import DriverError


class OciExec:
    """:class:`~bosun.agent.runtime.base.ExecProcess` for ``<runtime> exec``."""

    def __init__(self, proc: asyncio.subprocess.Process, stdin: asyncio.StreamWriter | None,
                 stdout: asyncio.StreamReader, stderr: asyncio.StreamReader | None, master: int | None,
                 pid_file: Path | None = None) -> None:
        self._proc = proc
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._master = master
        self._pid_file = pid_file

    async def wait(self) -> int:
        code = await self._proc.wait()
        if self._master is not None:
            # Let the reader drain what the terminal still holds, then drop our end.
            await asyncio.sleep(0.05)
        if self._pid_file is not None:
            self._pid_file.unlink(missing_ok=True)
        return 128 - code if code < 0 else code

    def resize(self, cols: int, rows: int) -> None:
        if self._master is None:
            return
        size = struct.pack("HHHH", rows, cols, 0, 0)
        with contextlib.suppress(OSError):
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, size)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._proc.pid, signal.SIGWINCH)
        with contextlib.suppress(OSError, ValueError):
            pid = int((self._pid_file or Path("/nonexistent")).read_text().strip())
            fd = os.open(f"/proc/{pid}/fd/0", os.O_RDWR | os.O_NOCTTY)
            try:
                fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
            finally:
                os.close(fd)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)


async def run_to_end(runtime_exec: list[str], cid: str, d: Path, command: list[str],
                     timeout: float) -> tuple[int, bytes]:  # noqa: ASYNC109
    """``command`` run in container ``cid`` (directory ``d``) to its end: (exit code, output),
    for exec probes and hooks, which need no streams. ``<runtime> exec`` started from the
    spawn pool; on timeout everything it started is killed and TimeoutError raised."""
    # The command's host pid: on timeout it is killed with its process group, as killing
    # the runtime alone would leave it running.
    pid_file = d / f"exec-{uuid.uuid4().hex[:12]}.pid"
    argv = [*runtime_exec, "--pid-file", str(pid_file), cid, *command]

    def kill_command() -> None:
        pid = int(pid_file.read_text().strip())
        group = os.getpgid(pid)  # the runtime starts it in a session of its own
        os.kill(pid, signal.SIGKILL)
        if group != os.getpgid(0):
            os.killpg(group, signal.SIGKILL)

    try:
        return await spawn.run_in_session(argv, timeout=timeout, on_timeout=kill_command)
    except TimeoutError:
        raise
    except OSError as e:
        raise DriverError("ExecError", f"exec failed: {e.strerror or e}") from e
    finally:
        pid_file.unlink(missing_ok=True)


async def start_exec(argv: list[str], *, tty: bool, stdin: bool, pid_file: Path | None = None) -> OciExec:
    """``pid_file``: where ``argv`` (with a tty) has the runtime write the command's host pid."""
    loop = asyncio.get_running_loop()
    if not tty:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise DriverError("ExecError", f"exec failed: {e.strerror or e}") from e
        assert proc.stdout is not None
        return OciExec(proc, proc.stdin, proc.stdout, proc.stderr, None)
    master, slave = os.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    except OSError as e:
        os.close(master)
        raise DriverError("ExecError", f"exec failed: {e.strerror or e}") from e
    finally:
        os.close(slave)
    reader = asyncio.StreamReader()
    rfile = os.fdopen(os.dup(master), "rb", buffering=0)
    await loop.connect_read_pipe(lambda: _PtyReader(reader), rfile)
    writer = None
    if stdin:
        wfile = os.fdopen(os.dup(master), "wb", buffering=0)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, wfile)
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return OciExec(proc, writer, reader, None, master, pid_file)


class _PtyReader(asyncio.StreamReaderProtocol):
    """A pty read end reports EIO once the other side is closed: that is just EOF."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(None if isinstance(exc, OSError) else exc)
