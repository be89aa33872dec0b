"""Where API Priority and Fairness meets a request (after authentication, before
authorization, as in kube-apiserver's handler chain): which requests it sees, how many seats
each takes (:mod:`.width`), how long a watch holds its seat, and the ``X-Kubernetes-PF-*``
headers on their responses.

Long-running requests that are not watches (exec, attach, port-forward, proxy, logs) are not
classified and hold no seat, as upstream. A watch is classified and admitted like any
request (it may wait or be refused), and holds its seat while its initial events are sent:
the watch handler says when they are (:func:`initialized`), and the seat is given back then,
or when the watch ends if sooner.

The public paths answered before authentication (``/healthz``, ``/livez``, ``/readyz``,
``/version``) are not classified either: upstream's suggested ``probes`` schema makes the
probes exempt anyway. In-process components' responses carry no headers (nobody reads them).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from bosun.api.apf.dispatcher import Dispatcher, Flow
from bosun.api.apf.width import Counts, estimate
from bosun.api.target import Decoded, Lookup, decoded
from bosun.api.watchcache import WatchCache
from bosun.security.identity import User

FLOW = web.RequestKey("bosun.apf_flow", Flow)
# Called by the watch handler once its initial events are sent (the watch's seat comes free).
WATCH_INITIALIZED: web.RequestKey[Callable[[], None]] = web.RequestKey("bosun.apf_watch_initialized")
SCHEMA_UID = "X-Kubernetes-PF-FlowSchema-UID"
LEVEL_UID = "X-Kubernetes-PF-PriorityLevel-UID"
# Upstream's long-running subresources (BasicLongRunningRequestCheck); "proxy" is a verb there too.
LONG_RUNNING = frozenset({"attach", "exec", "proxy", "log", "portforward"})


def is_watch(request: web.Request, d: Decoded) -> bool:
    return d.verb == "watch" or (d.resource_request and request.query.get("watch", "").lower() in ("1", "true"))


def initialized(request: web.Request) -> None:
    """A watch has sent its initial events: the seat it held for them comes free."""
    signal = request.get(WATCH_INITIALIZED)
    if signal is not None:
        signal()


class CacheCounts:
    """The estimate's counts from the watch cache: objects held, watches following."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache

    def objects(self, group_plural: str) -> int:
        st = self.cache.state.get(group_plural)
        return 0 if st is None else len(st.all.items)

    def watches(self, group_plural: str) -> int:
        return len(self.cache.watchers.get(group_plural, ()))


class Gate:
    def __init__(self, dispatcher: Dispatcher, served: Lookup, counts: Counts | None = None) -> None:
        self.dispatcher = dispatcher
        self.served = served
        self.counts = counts

    def flow(self, request: web.Request, user: User) -> Flow | None:
        """The request's flow and width (kept on it for the headers), or None: not limited."""
        d = decoded(request, self.served)
        if d.subresource in LONG_RUNNING:
            return None
        flow = self.dispatcher.classify(user, d)
        if flow is not None:
            flow.user = user.name
            if not flow.level.exempt:
                flow.work = estimate(d, request.query, self.counts, flow.level.max_seats)
            request[FLOW] = flow
        return flow

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """aiohttp's on_response_prepare: every response, streaming or not, 429 included."""
        flow = request.get(FLOW)
        if flow is not None:
            response.headers[SCHEMA_UID] = flow.schema.uid
            response.headers[LEVEL_UID] = flow.level.uid
