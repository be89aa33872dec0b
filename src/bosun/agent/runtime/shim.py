"""A tiny per-container supervisor (like containerd-shim/conmon), run as its own process.

Why a separate process: the container's output pipes and exit status must outlive the
agent, so that an agent killed with SIGKILL and restarted finds its containers still
running, their logs still written, and how they ended when they did. The shim detaches
into its own session, starts the command in a new process group, copies its
stdout/stderr into the CRI log file, and writes ``exit.json`` when it ends.

State directory protocol (``spec.json`` written by the driver, the rest by the shim):
  ``spec.json``  {"command": [...], "env": {...}, "working_dir": "...", "log_path": "...",
                 "log_max_bytes": N, "log_max_files": N,  (rotation; optional)
                 "detached_pid_file": "..."}  (optional, see below)
  ``pid``        "<pid> <starttime> <started>" of the process the shim started
  ``exit.json``  {"exit_code", "finished_at", "started_at", "reason", "message"}
``reason`` is "StartError" when the command could not be executed at all.

Detached mode (``detached_pid_file``): the command is an OCI runtime's ``run --detach``,
which starts the container with our pipes as its stdio, writes its pid there and exits. The
shim is the child subreaper (``PR_SET_CHILD_SUBREAPER``), so the container's init becomes
its child and its exit status is collected here with ``waitpid``: no runtime process stays
in the foreground per container (runc's was ~2.4 MB PSS and a Go runtime each). A runtime
that exits non-zero started nothing: its code is the exit code (the driver reads why from
the runtime's log).

Usage: ``python -S -I shim.py STATE_DIR`` (:func:`shim_argv`): standard library only, so no
site-packages scan at start; the command gets exactly the environment in spec.json.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def shim_argv(state: Path) -> list[str]:
    """How drivers start the shim: by file with ``-S -I`` (no site, isolated), which starts
    faster and smaller than ``-m`` with the venv's site-packages."""
    return [sys.executable, "-S", "-I", os.path.abspath(__file__), str(state)]


def proc_starttime(pid: int) -> str:
    """Field 22 of /proc/PID/stat: tells a live process from a later one reusing its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def cri_timestamp(now: float | None = None) -> str:
    t = time.time() if now is None else now
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return f"{base}.{int((t % 1) * 1e9):09d}Z"


def _write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class RotatingLog:
    """The log file, renamed to ``<path>.1`` (older ones shifted to ``.2``...) once it
    reaches ``max_bytes``, so a chatty container cannot fill the disk; ``max_files``
    counts the live file too. Readers that follow by name notice the new inode."""

    def __init__(self, path: Path, max_bytes: int = 0, max_files: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max(1, max_files)
        self._f = path.open("ab")
        self._size = self._f.tell()

    def write(self, data: bytes) -> None:
        self._f.write(data)
        self._size += len(data)

    def flush(self) -> None:
        self._f.flush()
        if self.max_bytes and self._size >= self.max_bytes:
            self.rotate()

    def rotate(self) -> None:
        self._f.close()
        keep = self.max_files - 1
        if keep <= 0:
            self.path.unlink(missing_ok=True)
        else:
            self.path.with_name(f"{self.path.name}.{keep}").unlink(missing_ok=True)
            for i in range(keep - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._f = self.path.open("ab")
        self._size = 0

    def close(self) -> None:
        self._f.close()


class _LogWriter:
    """Splits a byte stream into CRI log records (``F`` full lines, ``P`` partial ones)."""

    MAX_LINE = 16 * 1024

    def __init__(self, out: object, stream: str) -> None:
        self.out = out
        self.stream = stream
        self.buf = b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                if len(self.buf) >= self.MAX_LINE:
                    self._record(self.buf[: self.MAX_LINE], b"P")
                    self.buf = self.buf[self.MAX_LINE:]
                    continue
                return
            self._record(self.buf[:nl], b"F")
            self.buf = self.buf[nl + 1:]

    def flush(self) -> None:
        if self.buf:
            self._record(self.buf, b"P")
            self.buf = b""

    def _record(self, line: bytes, tag: bytes) -> None:
        head = f"{cri_timestamp()} {self.stream} ".encode()
        self.out.write(head + tag + b" " + line + b"\n")  # type: ignore[attr-defined]
        self.out.flush()  # type: ignore[attr-defined]


def _become_subreaper() -> None:
    import ctypes  # only in detached mode: ctypes costs a few ms at start

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _detached_pid(proc: subprocess.Popen[bytes], pid_file: Path) -> tuple[int, int | None]:
    """Wait for the runtime to exit: (container pid, None) once it started the container,
    (0, exit code) when it failed."""
    code = proc.wait()
    if code != 0:
        return 0, code
    try:
        return int(pid_file.read_text().strip()), None
    except (OSError, ValueError):
        return 0, 255


def run(state: Path, log_path: Path, workdir: str, cmd: list[str], env: dict[str, str],
        log_max_bytes: int = 0, log_max_files: int = 5, detached_pid_file: str = "") -> int:
    started = time.time()
    if detached_pid_file:
        _become_subreaper()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=workdir or None, env=env,
                                start_new_session=True)
    except OSError as e:
        what = cmd[0] if cmd else "(empty command)"
        msg = f"failed to start {what!r}: {e.strerror or e}"
        with log_path.open("ab") as failed:
            _LogWriter(failed, "stderr").feed(msg.encode() + b"\n")
        _write_json(state / "exit.json", {"exit_code": 128, "started_at": 0, "finished_at": time.time(),
                                         "reason": "StartError", "message": msg})
        return 0
    (state / "pid").write_text(f"{proc.pid} {proc_starttime(proc.pid)} {started}")
    assert proc.stdout is not None and proc.stderr is not None
    child = 0
    if detached_pid_file:
        child, rt_code = _detached_pid(proc, Path(detached_pid_file))
        if rt_code is not None:
            proc.stdout.close()
            proc.stderr.close()
            _write_json(state / "exit.json", {"exit_code": rt_code, "started_at": started,
                                             "finished_at": time.time(), "reason": "Error", "message": ""})
            return 0
    sel = selectors.DefaultSelector()
    out = RotatingLog(log_path, log_max_bytes, log_max_files)
    try:
        writers = {proc.stdout.fileno(): _LogWriter(out, "stdout"),
                   proc.stderr.fileno(): _LogWriter(out, "stderr")}
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        open_fds = 2
        while open_fds:
            for key, _ in sel.select():
                fd = key.fd
                data = os.read(fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    writers[fd].flush()
                    open_fds -= 1
                else:
                    writers[fd].feed(data)
    finally:
        out.close()
    code = _wait_child(child) if child else proc.wait()
    reason, message = ("Completed" if code == 0 else "Error"), ""
    if code < 0:
        message = f"killed by signal {signal.Signals(-code).name}"
        code = 128 - code
    _write_json(state / "exit.json", {"exit_code": code, "started_at": started, "finished_at": time.time(),
                                     "reason": reason, "message": message})
    return 0


def _wait_child(pid: int) -> int:
    """The container's init, reparented to us: its status like Popen.returncode."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 255  # not ours after all (should not happen with the subreaper bit)
        except InterruptedError:
            continue
        return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: shim STATE_DIR", file=sys.stderr)
        return 2
    state = Path(argv[0])
    spec = json.loads((state / "spec.json").read_text())
    # Ignore the agent's Ctrl-C / terminal hang-up: only the driver decides when we end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return run(state, Path(spec["log_path"]), str(spec.get("working_dir") or ""),
               [str(a) for a in spec["command"]], {str(k): str(v) for k, v in spec["env"].items()},
               int(spec.get("log_max_bytes") or 0), int(spec.get("log_max_files") or 5),
               str(spec.get("detached_pid_file") or ""))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
