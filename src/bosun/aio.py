"""asyncio helpers shared by every long-running component."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[object] | asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait until it has really ended.

    One ``cancel()`` is not always enough on Python 3.11: ``asyncio.wait_for`` can swallow a
    cancellation that races with its inner future finishing, and the task then waits forever
    at its next ``await``. Cancelling until it is done makes shutdown reliable.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
