"""Answers that depend on which CRDs this process has seen, read once it has seen the store.

A process serves what its catalog holds, and its catalog follows the CRD events of its watch
cache. Right after a CRD is created (or becomes Established) through one API process, another
(an API worker, or a second server on the same etcd) learns of it a few milliseconds later,
when the event reaches its cache. In that window, ``kubectl apply -f crd.yaml && kubectl apply
-f cr.yaml`` would find the kind missing from discovery, or get a 404 for its objects, if the
second command's connection landed on that process.

So discovery, OpenAPI, and a request for a resource the catalog does not serve first wait
until the cache has reached the store's current revision (what upstream does for a consistent
read from its watch cache), bounded by :data:`TIMEOUT`: a store that cannot say, or a cache
that cannot catch up in time, leaves the answer to what the process knows.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bosun.store.base import StoreError

if TYPE_CHECKING:
    from bosun.api.storage import Storage
    from bosun.api.watchcache import CachedEvent, WatchCache

log = logging.getLogger(__name__)

TIMEOUT = 2.0


class CatchUp:
    """``await catch_up()``: True once ``cache`` has seen what the store held when asked."""

    def __init__(self, cache: WatchCache, storage: Storage, timeout: float = TIMEOUT) -> None:
        self.cache = cache
        self.storage = storage  # its store, read at each call (the server wraps it to time it)
        self.timeout = timeout

    async def __call__(self) -> bool:
        try:
            target = await self.storage.store.current_revision()
        except (StoreError, OSError) as exc:
            log.debug("cannot read the store's revision (%s): answering from the watch cache", exc)
            return False
        cache = self.cache
        if cache.revision >= target:
            return True
        reached = asyncio.get_running_loop().create_future()

        def seen(ev: CachedEvent) -> None:
            if cache.revision >= target and not reached.done():
                reached.set_result(None)

        cache.listeners.append(seen)
        try:
            await asyncio.wait_for(reached, self.timeout)
            return True
        except TimeoutError:
            log.warning("the watch cache did not reach revision %d within %.0fs (at %d)", target, self.timeout,
                        cache.revision)
            return False
        finally:
            cache.listeners.remove(seen)
