"""The shim's side of interactive containers (``stdin: true`` and/or ``tty: true``): it keeps
the container's input end (a pipe, or the terminal's master) and serves ``kubectl attach``
on a unix socket in its state directory, so that attaching works with any driver that starts
containers under the shim, and keeps working after an agent restart.

Loaded by the shim only for such containers (plain ones pay nothing): it imports ``_socket``,
``fcntl`` and ``termios`` on top of the shim's own modules, and nothing from ``bosun``.

Terminals: with the process driver the shim opens the pty itself and gives the command its
slave as controlling terminal. With an OCI runtime, ``run --detach`` makes the terminal inside
the container and sends its master through ``--console-socket`` (``console.sock``, bound
here before the runtime starts), as containerd's shim receives it.

``attach.sock`` protocol (both ways: one channel byte, a 4-byte big-endian length, the bytes):
  agent -> shim: 0 stdin, 4 resize (``cols rows`` as two 2-byte numbers), 255 close stdin
  shim -> agent: 1 stdout, 2 stderr (a tty has only stdout)
Every client gets the output from when it connected on; the shim closes the clients when the
container's output ends. ``stdinOnce``: stdin is closed when the first client leaves.
"""

from __future__ import annotations

import _socket
import fcntl
import os
import select
import sys
import termios

STDIN, STDOUT, STDERR, RESIZE, CLOSE = 0, 1, 2, 4, 255
ATTACH, CONSOLE = "attach.sock", "console.sock"
SEND_TIMEOUT = 2.0  # a client that takes longer to read is dropped: the container never waits
# Input not yet taken by the container; past this, clients are not read until it drains. The
# shim never blocks on the container's input: it would stop copying its output, and a
# container blocked writing that output would never read its input again.
MAX_PENDING = 256 * 1024


def frame(channel: int, data: bytes) -> bytes:
    return bytes([channel]) + len(data).to_bytes(4, "big") + data


class Stdio:
    """Created in the state directory (the shim's cwd: socket paths are short and relative)."""

    def __init__(self, tty: bool, stdin: bool, stdin_once: bool, console: bool) -> None:
        self.tty, self.stdin_once = tty, stdin_once
        self.master: int | None = None
        self._slave: int | None = None
        self._stdin_r: int | None = None
        self._stdin_w: int | None = None
        self._console: _socket.socket | None = None
        self._clients: dict[int, tuple[_socket.socket, bytearray]] = {}
        self._served = False
        self._in_fd: int | None = None  # where input goes: the stdin pipe, or a dup of the master
        self._pending = bytearray()
        self._close_pending = False
        self._paused = False
        self._poll: select.poll | None = None
        if tty and console:
            self._console = self._listen(CONSOLE)
        elif tty:
            self.master, self._slave = os.openpty()
        elif stdin:
            self._stdin_r, self._stdin_w = os.pipe()
            self._in_fd = self._stdin_w
            os.set_blocking(self._stdin_w, False)
        self._listener = self._listen(ATTACH)

    @staticmethod
    def _listen(name: str) -> _socket.socket:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.bind(name)
        os.chmod(name, 0o600)  # the container's input is its owner's (root's) alone
        sock.listen(8)
        return sock

    def child_stdio(self) -> None:
        """In the forked child, after setsid: its stdin (and with a pty, all three and its
        controlling terminal)."""
        if self._slave is not None:
            for fd in (0, 1, 2):
                os.dup2(self._slave, fd)
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        elif self._stdin_r is not None:
            os.dup2(self._stdin_r, 0)

    @property
    def replaces_output(self) -> bool:
        """True when the child writes to our pty slave rather than the output pipes."""
        return self._slave is not None

    def started(self) -> None:
        """In the shim once the child runs: drop the child's ends; take the runtime's terminal."""
        for fd in (self._slave, self._stdin_r):
            if fd is not None:
                os.close(fd)
        self._slave = self._stdin_r = None
        if self._console is not None:
            self.master = self._receive_console(self._console)
            self._console.close()
            self._console = None
            try:
                os.unlink(CONSOLE)
            except OSError:
                pass
        if self.master is not None:
            # Non-blocking for the file (the copy loop reads only when poll says so).
            self._in_fd = os.dup(self.master)
            os.set_blocking(self._in_fd, False)

    @staticmethod
    def _receive_console(listener: _socket.socket) -> int | None:
        listener.settimeout(10.0)
        try:
            fd, _ = listener._accept()  # type: ignore[attr-defined]
        except OSError:
            return None
        conn = _socket.socket(fileno=fd)
        try:
            _, ancdata, _, _ = conn.recvmsg(4096, _socket.CMSG_SPACE(4))
        except OSError:
            return None
        finally:
            conn.close()
        for level, kind, data in ancdata:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4:
                return int.from_bytes(data[:4], sys.byteorder)
        return None

    def register(self, poll: select.poll) -> None:
        self._poll = poll
        poll.register(self._listener.fileno(), select.POLLIN)

    def handles(self, fd: int) -> bool:
        return fd == self._listener.fileno() or fd in self._clients or (fd == self._in_fd and fd is not None)

    def on_event(self, fd: int, poll: select.poll) -> None:
        if fd == self._in_fd:
            self._flush()
            return
        if fd == self._listener.fileno():
            try:
                cfd, _ = self._listener._accept()  # type: ignore[attr-defined]
            except OSError:
                return
            sock = _socket.socket(fileno=cfd)
            sock.settimeout(SEND_TIMEOUT)
            self._clients[cfd] = (sock, bytearray())
            poll.register(cfd, 0 if self._paused else select.POLLIN)
            return
        sock, buf = self._clients[fd]
        try:  # never waits: the event may be stale (an fd dropped and reused in one poll round)
            data = sock.recv(65536, _socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(fd, poll)
            return
        buf += data
        while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[1:5], "big"):
            n = int.from_bytes(buf[1:5], "big")
            channel, payload = buf[0], bytes(buf[5:5 + n])
            del buf[:5 + n]
            self._input(channel, payload)

    def _input(self, channel: int, payload: bytes) -> None:
        self._served = True
        if channel == STDIN and self._in_fd is not None and payload:
            self._pending += payload
            self._flush()
        elif channel == RESIZE and self.master is not None and len(payload) == 4:
            cols, rows = int.from_bytes(payload[:2], "big"), int.from_bytes(payload[2:], "big")
            winsize = b"".join(v.to_bytes(2, sys.byteorder) for v in (rows, cols, 0, 0))
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, winsize)
            except OSError:
                pass
        elif channel == CLOSE:
            self._close_stdin()

    def _flush(self) -> None:
        """Write what the container takes now; wait for POLLOUT for the rest."""
        fd, poll = self._in_fd, self._poll
        while self._pending and fd is not None:
            try:
                del self._pending[:os.write(fd, self._pending)]
            except BlockingIOError:
                break
            except OSError:  # the container closed its input: drop what it will never read
                self._pending.clear()
        if poll is None or fd is None:
            return
        if self._pending:
            poll.register(fd, select.POLLOUT)
        else:
            _unregister(poll, fd)
        paused = len(self._pending) > MAX_PENDING
        if paused != self._paused:
            self._paused = paused
            for cfd in self._clients:
                poll.modify(cfd, 0 if paused else select.POLLIN)
        if not self._pending and self._close_pending:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self._pending:
            self._close_pending = True  # once the container has taken the rest
            return
        if self._stdin_w is not None:
            if self._poll is not None:
                _unregister(self._poll, self._stdin_w)
            os.close(self._stdin_w)
            self._stdin_w = self._in_fd = None

    def _drop(self, fd: int, poll: select.poll) -> None:
        sock, _ = self._clients.pop(fd)
        poll.unregister(fd)
        sock.close()
        if self.stdin_once and self._served:
            self._close_stdin()

    def broadcast(self, channel: int, data: bytes, poll: select.poll) -> None:
        message = frame(channel, data)
        for fd, (sock, _) in list(self._clients.items()):
            try:
                sock.sendall(message)
            except OSError:
                self._drop(fd, poll)

    def close(self) -> None:
        for sock, _ in self._clients.values():
            sock.close()
        self._clients.clear()
        self._listener.close()
        for fd in {self.master, self._stdin_w, self._in_fd}:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        try:
            os.unlink(ATTACH)
        except OSError:
            pass


def _unregister(poll: select.poll, fd: int) -> None:
    try:
        poll.unregister(fd)
    except KeyError:
        pass
