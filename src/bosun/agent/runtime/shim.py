"""A tiny per-container supervisor (like containerd-shim/conmon), run as its own process.

Why a separate process: the container's output pipes and exit status must outlive the
agent, so that an agent killed with SIGKILL and restarted finds its containers still
running, their logs still written, and how they ended when they did. The shim detaches
into its own session, starts the command in a new process group, copies its
stdout/stderr into the CRI log file, and writes ``exit.json`` when it ends.

State directory protocol (``spec.json`` written by the driver, the rest by the shim):
  ``spec.json``  {"command": [...], "env": {...}, "working_dir": "...", "log_path": "...",
                 "log_max_bytes": N, "log_max_files": N,  (rotation; optional)
                 "detached_pid_file": "...",  (optional, see below)
                 "hide_mount": "...",  (optional: run the command in a private mount namespace
                 without that mount, e.g. crun on hybrid cgroups; see oci.HYBRID_UNIFIED)
                 "stdin", "stdin_once", "tty", "console": bool}  (optional; see shim_stdio)
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

Usage: ``python -S -I shim.py STATE_DIR`` (:func:`shim_argv`). One shim lives as long as its
container, so its size is paid per container: it imports only os, select, signal, time, sys
and json (no subprocess, pathlib or selectors: 3 MB less each, and 15 ms less CPU at start),
and no site-packages. The command gets exactly the environment in spec.json.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False  # typing itself is not imported: the shim stays small
if TYPE_CHECKING:
    from bosun.agent.runtime.shim_stdio import Stdio

PR_SET_CHILD_SUBREAPER = 36


def shim_argv(state: str | os.PathLike[str]) -> list[str]:
    """How drivers start the shim: by file with ``-S -I`` (no site, isolated), which starts
    faster and smaller than ``-m`` with the venv's site-packages."""
    return [sys.executable, "-S", "-I", os.path.abspath(__file__), str(state)]


def proc_starttime(pid: int) -> str:
    """Field 22 of /proc/PID/stat: tells a live process from a later one reusing its pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def cri_timestamp(now: float | None = None) -> str:
    t = time.time() if now is None else now
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return f"{base}.{int((t % 1) * 1e9):09d}Z"


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _write_json(path: str, data: dict[str, object]) -> None:
    tmp = path + ".tmp"
    _write_text(tmp, json.dumps(data))
    os.replace(tmp, path)


class RotatingLog:
    """The log file, renamed to ``<path>.1`` (older ones shifted to ``.2``...) once it
    reaches ``max_bytes``, so a chatty container cannot fill the disk; ``max_files``
    counts the live file too. Readers that follow by name notice the new inode."""

    def __init__(self, path: str, max_bytes: int = 0, max_files: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max(1, max_files)
        self._f = open(path, "ab")
        self._size = self._f.tell()

    @property
    def size(self) -> int:
        return self._size

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
            _unlink(self.path)
        else:
            _unlink(f"{self.path}.{keep}")
            for i in range(keep - 1, 0, -1):
                if os.path.exists(f"{self.path}.{i}"):
                    os.replace(f"{self.path}.{i}", f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._f = open(self.path, "ab")
        self._size = 0

    def close(self) -> None:
        self._f.close()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


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


CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE, MNT_DETACH = 0x4000, 0x40000, 2


def _hide_mount(path: str) -> None:
    """In the child: a private copy of the mount namespace without ``path`` (what
    ``unshare -m`` + ``umount -l`` do, without their three execs per container start)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0 \
            or libc.umount2(path.encode(), MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), f"cannot hide {path} in a private mount namespace")


def _spawn(cmd: list[str], env: dict[str, str], workdir: str, hide_mount: str = "",
           stdio: Stdio | None = None) -> tuple[int, int, int]:
    """fork + exec in a new session with stdout/stderr on pipes: (pid, out, err). Raises
    OSError when the command cannot be executed (the child reports errno through a
    close-on-exec pipe, as subprocess does)."""
    if not cmd:
        raise OSError(2, "empty command")
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    exc_r, exc_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.setsid()
            for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            if stdio is not None:
                stdio.child_stdio()
            if hide_mount:
                _hide_mount(hide_mount)
            if workdir:
                os.chdir(workdir)
            os.execvpe(cmd[0], cmd, env)
        except OSError as e:
            os.write(exc_w, str(e.errno or 0).encode())
        finally:
            os._exit(127)
    for fd in (out_w, err_w, exc_w):
        os.close(fd)
    failed = os.read(exc_r, 32)
    os.close(exc_r)
    if failed:
        os.waitpid(pid, 0)
        os.close(out_r)
        os.close(err_r)
        errno = int(failed)
        raise OSError(errno, os.strerror(errno))
    return pid, out_r, err_r


def _become_subreaper() -> None:
    import ctypes  # only in detached mode: ctypes costs a few ms at start

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _wait(pid: int, reap_others: bool = False) -> int:
    """Exit status of a child like Popen.returncode (negative: killed by that signal).
    ``reap_others``: as subreaper we also inherit the runtime's intermediate processes (crun
    forks one that exits at once); they are reaped on the way instead of staying zombies."""
    while True:
        try:
            got, status = os.waitpid(-1 if reap_others else pid, 0)
        except ChildProcessError:
            return 255  # not ours after all (should not happen with the subreaper bit)
        except InterruptedError:
            continue
        if got == pid:
            return os.waitstatus_to_exitcode(status)


def _reap_exited(keep: int) -> None:
    """Collect children that already ended (the runtime's intermediate processes), never
    ``keep`` (the container: its status is read by :func:`_wait`). A straggler that ends
    later is reaped by that final wait."""
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, flags)
        except ChildProcessError:
            return
        if info is None or info.si_pid in (0, keep):
            return
        os.waitpid(info.si_pid, 0)


def _detached_pid(runtime_pid: int, pid_file: str) -> tuple[int, int | None]:
    """Wait for the runtime to exit: (container pid, None) once it started the container,
    (0, exit code) when it failed."""
    code = _wait(runtime_pid)
    if code != 0:
        return 0, code
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return 0, 255
    _reap_exited(keep=pid)
    return pid, None


def _copy_output(out_fd: int, err_fd: int, log: RotatingLog, stdio: Stdio | None = None) -> None:
    """Copy both pipes (and an interactive container's terminal) into the CRI log until the
    container's side of all of them is closed; attached clients get the same bytes."""
    writers = {out_fd: _LogWriter(log, "stdout"), err_fd: _LogWriter(log, "stderr")}
    channels = {out_fd: 1, err_fd: 2}
    poll = select.poll()
    if stdio is not None:
        stdio.register(poll)
        if stdio.master is not None:
            writers[stdio.master] = _LogWriter(log, "stdout")
            channels[stdio.master] = 1
    for fd in writers:
        poll.register(fd, select.POLLIN)
    while writers:
        for fd, _ in poll.poll():
            if stdio is not None and stdio.handles(fd):
                stdio.on_event(fd, poll)
                continue
            if fd not in writers:  # dropped by an earlier event of this round
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:  # an interactive terminal is non-blocking: nothing after all
                continue
            except OSError:  # EIO: a terminal whose last user is gone
                data = b""
            if data:
                writers[fd].feed(data)
                if stdio is not None:
                    stdio.broadcast(channels[fd], data, poll)
                continue
            if stdio is not None and fd == stdio.master:
                stdio.master = None  # closed below, not by stdio.close()
            poll.unregister(fd)
            writers.pop(fd).flush()
            os.close(fd)


def run(state: str | os.PathLike[str], log_path: str | os.PathLike[str], workdir: str, cmd: list[str],
        env: dict[str, str], log_max_bytes: int = 0, log_max_files: int = 5, detached_pid_file: str = "",
        hide_mount: str = "", notify_fd: int = -1, interactive: dict[str, bool] | None = None) -> int:
    state, log_path = os.path.abspath(state), os.fspath(log_path)
    started = time.time()
    if detached_pid_file:
        _become_subreaper()
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    stdio = _interactive(state, interactive) if interactive else None
    try:
        pid, out_fd, err_fd = _spawn(cmd, env, workdir, hide_mount, stdio)
    except OSError as e:
        what = cmd[0] if cmd else "(empty command)"
        msg = f"failed to start {what!r}: {e.strerror or e}"
        with open(log_path, "ab") as failed:
            _LogWriter(failed, "stderr").feed(msg.encode() + b"\n")
        _write_json(f"{state}/exit.json", {"exit_code": 128, "started_at": 0, "finished_at": time.time(),
                                          "reason": "StartError", "message": msg})
        return 0
    _write_text(f"{state}/pid", f"{pid} {proc_starttime(pid)} {started}")
    child = pid
    if detached_pid_file:
        child, rt_code = _detached_pid(pid, detached_pid_file)
        if rt_code is not None:
            os.close(out_fd)
            os.close(err_fd)
            _write_json(f"{state}/exit.json", {"exit_code": rt_code, "started_at": started,
                                              "finished_at": time.time(), "reason": "Error", "message": ""})
            return 0
    if stdio is not None:
        stdio.started()
    _notify(notify_fd)
    log = RotatingLog(log_path, log_max_bytes, log_max_files)
    try:
        _copy_output(out_fd, err_fd, log, stdio)
    finally:
        log.close()
        if stdio is not None:
            stdio.close()
    code = _wait(child, reap_others=bool(detached_pid_file))
    reason, message = ("Completed" if code == 0 else "Error"), ""
    if code < 0:
        message = f"killed by signal {signal.Signals(-code).name}"
        code = 128 - code
    _write_json(f"{state}/exit.json", {"exit_code": code, "started_at": started, "finished_at": time.time(),
                                      "reason": reason, "message": message})
    return 0


def _interactive(state: str, spec: dict[str, bool]) -> Stdio:
    """An interactive container's attach server, in the state dir (the cwd from now on)."""
    os.chdir(state)
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    import shim_stdio  # kept off the path of every other container

    return shim_stdio.Stdio(**spec)


def _notify(fd: int) -> None:
    """Tell whoever started us (through the zygote) that the command runs: one line, then
    the fd is closed. When the command fails to start it is closed only by our exit, after
    exit.json is written: either way the starter needs no polling."""
    if fd < 0:
        return
    try:
        os.write(fd, b"started\n")
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass


def main(argv: list[str], notify_fd: int = -1) -> int:
    if len(argv) != 1:
        print("usage: shim STATE_DIR", file=sys.stderr)
        return 2
    state = argv[0]
    with open(f"{state}/spec.json") as f:
        spec = json.load(f)
    # Ignore the agent's Ctrl-C / terminal hang-up: only the driver decides when we end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return run(state, str(spec["log_path"]), str(spec.get("working_dir") or ""),
               [str(a) for a in spec["command"]], {str(k): str(v) for k, v in spec["env"].items()},
               int(spec.get("log_max_bytes") or 0), int(spec.get("log_max_files") or 5),
               str(spec.get("detached_pid_file") or ""), str(spec.get("hide_mount") or ""), notify_fd,
               {k: bool(spec.get(k)) for k in ("stdin", "stdin_once", "tty", "console")}
               if spec.get("stdin") or spec.get("tty") else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
