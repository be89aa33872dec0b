"""The life of a daemon command (``bosun agent``, ``bosun up``, ``bosun hollow``).

Why a module: scripts and tests wait for the line ``ready`` on stdout before they use what
the command started, and stop it with SIGTERM or SIGINT; every daemon command must keep
that contract alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable

import click


async def run_until_signal(start: Callable[[], Awaitable[object]], stop: Callable[[], Awaitable[None]],
                           ready_message: Callable[[], str]) -> None:
    """Start, print ``ready_message()`` then ``ready``, wait for SIGINT/SIGTERM, stop (also
    when starting fails, or is interrupted: an agent's start waits for its podCIDR)."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
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
        click.echo(ready_message())
        click.echo("ready")
        sys.stdout.flush()
        await done.wait()
    finally:
        await stop()
