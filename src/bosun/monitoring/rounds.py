"""When the history's collection rounds land, for whoever evaluates over it.

The alert rules read the history; evaluating them on a timer of their own adds up to one
more resolution to every alert's latency (a value that landed just after an evaluation
waits for the next). So the collector counts its rounds here and an evaluator follows them:

``GET /metrics/rounds?after=N&timeoutSeconds=S`` answers ``{"round": R, "time": T,
"resolution": RES}`` as soon as round ``R > N`` has landed (``T``: the Unix time its
samples were taken at), or after ``S`` seconds (at most :data:`MAX_WAIT`, default 10) with
the current round when none did. Without ``after`` it answers at once. A long poll rather
than a watch stream: one small request per round, through every transport the client has
(in-process, HTTP, an API worker forwarding to the history's process) without a streaming
path of its own. A server restart starts the count at 0 again: a follower that sees the
round go back just takes the new count.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from bosun.api import errors
from bosun.api.httputil import json_response

PATH = "/metrics/rounds"
MAX_WAIT = 30.0
DEFAULT_WAIT = 10.0


class Rounds:
    def __init__(self, resolution: float) -> None:
        self.resolution = resolution
        self.count = 0
        self.time = 0.0
        self._landed = asyncio.Event()

    def landed(self, t: float) -> None:
        """A round whose samples were taken at ``t`` is in the history: wake the followers."""
        self.count += 1
        self.time = t
        self._landed.set()
        self._landed = asyncio.Event()

    async def after(self, seen: int, wait: float) -> int:
        """The round count once it passed ``seen`` (or went back: a restart), or after ``wait``."""
        if self.count == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._landed.wait(), wait)
        return self.count

    def answer(self) -> dict[str, float | int]:
        return {"round": self.count, "time": self.time, "resolution": self.resolution}

    async def handler(self, request: web.Request) -> web.Response:
        raw_after, raw_wait = request.query.get("after"), request.query.get("timeoutSeconds")
        if raw_after is None:
            return json_response(self.answer())
        try:
            seen = int(raw_after)
        except ValueError:
            raise errors.bad_request(f"after: {raw_after!r} is not a round number") from None
        wait = DEFAULT_WAIT
        if raw_wait is not None:
            try:
                wait = float(raw_wait)
            except ValueError:
                raise errors.bad_request(f"timeoutSeconds: {raw_wait!r} is not a number of seconds") from None
            if not 0 <= wait <= MAX_WAIT:
                raise errors.bad_request(f"timeoutSeconds: must be between 0 and {MAX_WAIT:g}, not {raw_wait}")
        await self.after(seen, wait)
        return json_response(self.answer())
