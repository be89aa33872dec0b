"""Where API Priority and Fairness meets a request (after authentication, before
authorization, as in kube-apiserver's handler chain): which requests it sees, and the
``X-Kubernetes-PF-*`` headers on their responses.

Long-running requests that are not watches (exec, attach, port-forward, proxy, logs) are not
classified and hold no seat, as upstream. A watch is classified and must be admitted like any
request (it may wait or be refused), but gives its seat back as soon as it is admitted:
upstream holds it until the watch's initial events are sent; here a watch's start is served
from the watch cache and short, so it is not counted (kept simple).

The public paths answered before authentication (``/healthz``, ``/livez``, ``/readyz``,
``/version``) are not classified either: upstream's suggested ``probes`` schema makes the
probes exempt anyway. In-process components' responses carry no headers (nobody reads them).
"""

from __future__ import annotations

from aiohttp import web

from bosun.api.apf.dispatcher import Dispatcher, Flow
from bosun.api.target import Decoded, Lookup, decoded
from bosun.security.identity import User

FLOW = web.RequestKey("bosun.apf_flow", Flow)
SCHEMA_UID = "X-Kubernetes-PF-FlowSchema-UID"
LEVEL_UID = "X-Kubernetes-PF-PriorityLevel-UID"
# Upstream's long-running subresources (BasicLongRunningRequestCheck); "proxy" is a verb there too.
LONG_RUNNING = frozenset({"attach", "exec", "proxy", "log", "portforward"})


def is_watch(request: web.Request, d: Decoded) -> bool:
    return d.verb == "watch" or (d.resource_request and request.query.get("watch", "").lower() in ("1", "true"))


class Gate:
    def __init__(self, dispatcher: Dispatcher, served: Lookup) -> None:
        self.dispatcher = dispatcher
        self.served = served

    def flow(self, request: web.Request, user: User) -> Flow | None:
        """The request's flow (kept on it for the headers), or None: not limited."""
        d = decoded(request, self.served)
        if d.subresource in LONG_RUNNING:
            return None
        flow = self.dispatcher.classify(user, d)
        if flow is not None:
            request[FLOW] = flow
        return flow

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """aiohttp's on_response_prepare: every response, streaming or not, 429 included."""
        flow = request.get(FLOW)
        if flow is not None:
            response.headers[SCHEMA_UID] = flow.schema.uid
            response.headers[LEVEL_UID] = flow.level.uid
