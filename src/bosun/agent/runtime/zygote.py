"""A pre-started process that forks container shims, so that no shim pays for starting Python.

Why: ``python -S -I shim.py`` costs 8-15 ms of CPU per container to start an interpreter and
import the shim, and each shim then holds ~5 MB of private pages. With 100 pods created at
once on 2 cores that is ~1 s of CPU before any container runs. The zygote (named after
Android's) starts once per node, imports the shim (and ctypes, which the shim needs in
detached mode), freezes its objects out of the garbage collector's reach, and then forks one
child per container on request: a fork of a small process is well under a millisecond, and
the children share the interpreter's pages with the zygote and with each other, copying only
what they write.

Protocol: a unix stream socket (``zygote.sock`` in the driver's state dir). The driver
connects, sends one line, the absolute path of a shim state dir holding ``spec.json``, and
reads one line back: the child's pid, or ``error <text>``; then a second line, ``started``,
once the container runs, or the end of the stream when it could not start (the shim keeps
the connection until then: the driver waits without polling). The child starts a new session,
puts its stdin/stdout on /dev/null and its stderr on ``<state>/shim.log``, and runs
:func:`bosun.agent.runtime.shim.main` for that dir; it reports nothing else (the shim's files
are the interface, as for a shim started by exec). The zygote lets the kernel reap its
children and otherwise forgets them: a shim lives on when the zygote or the agent dies, and a
restarted agent re-adopts it from ``shim.pid`` as before.

The zygote exits when the agent that started it is gone (its parent changes), when its socket
file is removed or replaced (a newer zygote took over), and on SIGTERM.

Usage: ``python -S -I zygote.py SOCKET`` (:func:`zygote_argv`). Like the shim it imports no
site-packages and not even :mod:`socket` (``_socket`` is 5 ms and a few hundred kB less):
its size is shared by every shim.
"""

from __future__ import annotations

import _socket
import gc
import os
import select
import signal
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def zygote_argv(sock: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-S", "-I", os.path.join(_HERE, "zygote.py"), os.fspath(sock)]


def _child(conn: _socket.socket, listener: _socket.socket, state: str) -> None:
    """In the forked child: become the shim of ``state``; never returns."""
    code = 1
    try:
        listener.close()
        notify = conn.detach()  # stays close-on-exec: neither the runtime nor the container get it
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the shim waits for its own children
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(os.path.join(state, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(err, 2)
        os.close(null)
        os.close(err)
        gc.enable()
        import shim

        code = shim.main([state], notify)
    except BaseException as e:  # the child must end here, whatever happened
        try:
            os.write(2, f"zygote child for {state}: {e!r}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def _serve_one(conn: _socket.socket, listener: _socket.socket) -> None:
    conn.settimeout(5.0)
    data = b""
    while not data.endswith(b"\n") and len(data) < 8192:
        chunk = conn.recv(8192)
        if not chunk:
            return
        data += chunk
    state = data.decode(errors="replace").strip()
    if not os.path.isabs(state) or not os.path.isfile(os.path.join(state, "spec.json")):
        conn.sendall(f"error no spec.json in {state!r}\n".encode())
        return
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        _child(conn, listener, state)
    conn.sendall(f"{pid}\n".encode())


def _inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def serve(sock_path: str) -> int:
    sys.path.insert(0, _HERE)
    import ctypes  # noqa: F401 (loaded once here: the shim needs it in detached mode)

    import shim  # noqa: F401

    parent = os.getppid()
    # Bound by a name relative to its directory: a unix socket's path is limited to 107 bytes.
    os.chdir(os.path.dirname(os.path.abspath(sock_path)))
    sock_path = os.path.basename(sock_path)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps our children
    tmp = f"{sock_path}.{os.getpid()}"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    listener.bind(tmp)
    listener.listen(128)
    os.replace(tmp, sock_path)  # at once: a client never finds a socket nobody listens on
    ino = _inode(sock_path)
    poll = select.poll()
    poll.register(listener.fileno(), select.POLLIN)
    # What exists now lives as long as the zygote: keep the collector from touching (and so
    # copying) those pages in every child.
    gc.collect()
    gc.freeze()
    gc.disable()
    while os.getppid() == parent and _inode(sock_path) == ino:
        if not poll.poll(1000):
            continue
        try:
            fd, _ = listener._accept()  # type: ignore[attr-defined]
        except OSError:
            continue
        conn = _socket.socket(fileno=fd)
        try:
            _serve_one(conn, listener)
        except OSError:
            pass
        finally:
            conn.close()
    if _inode(sock_path) == ino:
        try:
            os.unlink(sock_path)
        except OSError:
            pass
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: zygote SOCKET", file=sys.stderr)
        return 2
    return serve(argv[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
