"""The life of a daemon command (``bosun agent``, ``bosun up``, ``bosun hollow``).

Why a module: scripts and tests wait for the line ``ready`` on stdout before they use what
the command started, and stop it with SIGTERM or SIGINT; every daemon command must keep
that contract alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import click


async def run_until_signal(start: Callable[[], Awaitable[object]], stop: Callable[[], Awaitable[None]],
                           ready_message: Callable[[], str],
                           hurry: Callable[[], list[str]] | None = None) -> None:
    """Start, print ``ready_message()`` then ``ready``, wait for SIGINT/SIGTERM, stop (also
    when starting fails, or is interrupted: an agent's start waits for its podCIDR).

    A second signal while stopping calls ``hurry()`` (which ends a drain at once and names
    the pods it leaves for the next start). Ending on a signal is the normal way out: the
    command exits 0, so that ``make run`` and scripts see no error after Ctrl-C."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        done.set()
        if signals == 1:
            click.echo("stopping (Ctrl-C again to stop at once and leave the pods for the next start)", err=True)
        elif hurry is not None:
            left = hurry()
            click.echo(f"stopping at once: {len(left)} pod(s) left running; the next start on this data dir "
                       "adopts or removes them", err=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)
    started = False
    try:
        starting = asyncio.ensure_future(start())
        waiting = asyncio.ensure_future(done.wait())
        await asyncio.wait((starting, waiting), return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return
        starting.result()
        started = True
        click.echo(ready_message())
        click.echo("ready")
        sys.stdout.flush()
        await done.wait()
    finally:
        await stop()
        if started:  # a start that failed says why in one line, not followed by this
            click.echo("stopped", err=True)


_held: list[int] = []  # lock files' descriptors, held for the life of the process


def lock_data_dir(data_dir: Path, what: str) -> None:
    """One daemon per data dir: a second one would fight over the same containers, sandboxes
    and store. The lock is an flock on ``<data dir>/lock`` (released by the kernel however the
    holder ends, SIGKILL included), which holds the holder's pid and name for the message."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid, _, holder = os.read(fd, 200).decode(errors="replace").strip().partition(" ")
        os.close(fd)
        raise click.ClickException(f"another {holder or 'bosun'} is running on data dir {data_dir} "
                                   f"(pid {pid or '?'}); stop it first, or give another --data-dir") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {what}\n".encode())
    _held.append(fd)


def check_port_free(host: str, port: int, flag: str) -> None:
    """Fail in one line before anything starts when the port is taken (another agent or
    server on this machine), instead of half-way through starting."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host or "0.0.0.0", port))
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise click.ClickException(f"cannot listen on {host}:{port} ({flag}): {e.strerror}") from None
            raise click.ClickException(f"port {port} ({flag}) is already in use on {host or '0.0.0.0'}: "
                                       f"another bosun agent or server runs on this machine; stop it, "
                                       f"or choose another {flag}") from None
