"""The aiohttp application: routes, authentication, and errors as ``Status`` objects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bosun.aio import cancel_and_wait
from bosun.api import discovery, errors, openapi, reviews
from bosun.api.access import AccessControl
from bosun.api.admission.base import WARNINGS
from bosun.api.aggregator import Aggregator, aggregated_groups, legacy_groups
from bosun.api.apf import debug as apf_debug
from bosun.api.apf.dispatcher import Dispatcher
from bosun.api.apf.gate import WATCH_INITIALIZED, CacheCounts, Gate, is_watch
from bosun.api.apf.inflight import InFlight
from bosun.api.errors import APIError
from bosun.api.fieldvalidation import add_warnings
from bosun.api.flowcontrol import FlowControl
from bosun.api.httputil import MAX_BODY, error_response, json_response
from bosun.api.instrumentation import APIMetrics
from bosun.api.local import LocalDispatcher
from bosun.api.requestinfo import USER
from bosun.api.rest import RestHandler
from bosun.api.swarm_endpoints import CA_PATH, SwarmEndpoints
from bosun.api.target import DECODED, Decoded, decoded
from bosun.monitoring.serving import Monitoring, OwnMonitoring
from bosun.security.authz.defaults import NODE_CREDENTIAL_PATH
from bosun.security.identity import User
from bosun.security.tokens import TokenAuthenticator
from bosun.store.base import Store

log = logging.getLogger(__name__)

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

# Paths anyone may read, as Kubernetes' system:public-info-viewer role allows.
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", CA_PATH})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Components in the server's own process send their requests here instead of over HTTPS.
LOCAL_DISPATCHER = web.AppKey("local_dispatcher", LocalDispatcher)
ACCESS = web.AppKey("access_control", AccessControl)


async def warn_deprecated_version(request: web.Request, response: web.StreamResponse) -> None:
    """Every response about a deprecated version says so, streamed ones (watches, large
    lists) too: this runs as the headers are sent, as upstream's warning recorder does."""
    found = request.get(DECODED)
    target = found.target if isinstance(found, Decoded) else None
    if target is None or not target.res.deprecation:
        return
    headers = {"Warning": response.headers["Warning"]} if "Warning" in response.headers else {}
    add_warnings(headers, [target.res.deprecation])
    if "Warning" in headers:
        response.headers["Warning"] = headers["Warning"]


def make_app(rest: RestHandler, store: Store, auth: TokenAuthenticator | None,
             swarm: SwarmEndpoints | None = None,
             monitoring: Callable[[APIMetrics], Monitoring] | None = None,
             concurrency_limit: int = 600, inflight: tuple[int, int] | None = None) -> web.Application:
    """``monitoring``: what answers the metrics history, query, federation and metrics APIs,
    made with this app's Prometheus registry (default: a history of this process's own);
    ``concurrency_limit``: this process's seats for API Priority and Fairness (0: no APF, the
    objects are still served); ``inflight``: without APF, this process's max-in-flight limits
    (read-only, mutating), or None for no limit at all."""
    access = AccessControl(auth, rest.storage, rest.cache, rest.catalog, rest.service_accounts)
    catalog = rest.catalog
    dispatcher = Dispatcher(concurrency_limit) if concurrency_limit > 0 else None
    gate = Gate(dispatcher, catalog, CacheCounts(rest.cache)) if dispatcher is not None else None
    in_flight = InFlight(*inflight) if dispatcher is None and inflight is not None else None
    aggregator = Aggregator(rest.storage)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        warnings: list[str] = []
        WARNINGS.set(warnings)  # this request's task only: admission's warnings for the client
        try:
            response = await served_request(request, handler)
        finally:
            WARNINGS.set(None)
        if warnings and not response.prepared:
            headers = {"Warning": response.headers.get("Warning", "")} if "Warning" in response.headers else {}
            add_warnings(headers, warnings)
            response.headers["Warning"] = headers["Warning"]
        return response

    async def served_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.path in PUBLIC_PATHS:
                return await handler(request)
            # Authentication, then API Priority and Fairness (a seat, a queue or 429), then
            # authorization (system:masters skips it), then for the review kinds (asked
            # about the caller, never stored) the answer itself.
            user = access.authenticate(request)
            request[USER] = user
            flow = gate.flow(request, user) if gate is not None else None
            if flow is None or dispatcher is None:
                if in_flight is None:
                    return await authorized(request, user, handler)
                kind = in_flight.take(decoded(request, catalog), user)
                if kind is None:
                    return await authorized(request, user, handler)
                try:
                    return await authorized(request, user, handler)
                finally:
                    in_flight.release(kind)
            if not dispatcher.admit_now(flow):
                await dispatcher.admit(flow)
            if is_watch(request, decoded(request, catalog)):
                # The seat is held until the watch's initial events are sent (bosun.api.apf.gate).
                held = [flow]

                def initialized() -> None:
                    if held:
                        dispatcher.done(held.pop())
                request[WATCH_INITIALIZED] = initialized
                try:
                    return await authorized(request, user, handler)
                finally:
                    initialized()
            try:
                return await authorized(request, user, handler)
            finally:
                dispatcher.done(flow)
        except APIError as exc:
            return error_response(exc)
        except web.HTTPRequestEntityTooLarge:
            return error_response(errors.too_large())
        except web.HTTPException as exc:
            if exc.status == 404:
                return error_response(APIError(404, "NotFound", "the server could not find the requested resource"))
            if exc.status == 405:
                return error_response(errors.method_not_allowed(f"method {request.method} is not allowed here"))
            raise
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path)
            return error_response(errors.internal("an internal error occurred; see the server log"))

    async def authorized(request: web.Request, user: User, handler: Handler) -> web.StreamResponse:
        access.authorize(request, user)
        if reviews.is_review(request.path):
            return await reviews.serve(access, request, user)
        return await handler(request)

    instruments = APIMetrics(catalog)
    if dispatcher is not None:
        instruments.include(dispatcher.families)
    if in_flight is not None:
        instruments.include(in_flight.families)
    instruments.include(rest.storage.admission.metrics.families())
    rest.storage.store = instruments.timed_store(rest.storage.store)
    served = (monitoring or (lambda m: OwnMonitoring(rest, None, m.registry)))(instruments)
    app = web.Application(middlewares=[instruments.middleware, middleware], client_max_size=MAX_BODY + 1)
    app[ACCESS] = access
    if gate is not None:
        app.on_response_prepare.append(gate.on_prepare)
    app.on_response_prepare.append(warn_deprecated_version)

    async def start_access(app: web.Application) -> None:
        await access.start()

    async def stop_access(app: web.Application) -> None:
        await access.stop()

    app.on_startup.append(start_access)
    app.on_cleanup.append(stop_access)
    flowcontrol = FlowControl(rest.storage, dispatcher)

    async def start_policies(app: web.Application) -> None:
        await rest.storage.policies.start(rest.storage, rest.cache, catalog)
        await flowcontrol.start(rest.cache)

    async def stop_policies(app: web.Application) -> None:
        await rest.storage.policies.stop()
        await flowcontrol.stop()

    app.on_startup.append(start_policies)
    app.on_cleanup.append(stop_policies)
    borrowing: list[asyncio.Task[None]] = []

    async def start_borrowing(app: web.Application) -> None:
        if dispatcher is not None:
            borrowing.append(asyncio.get_running_loop().create_task(dispatcher.run()))

    async def stop_borrowing(app: web.Application) -> None:
        for task in borrowing:
            await cancel_and_wait(task)

    app.on_startup.append(start_borrowing)
    app.on_cleanup.append(stop_borrowing)

    async def start_monitoring(app: web.Application) -> None:
        await served.start()

    async def stop_monitoring(app: web.Application) -> None:
        await served.stop()

    app.on_startup.append(start_monitoring)
    app.on_cleanup.append(stop_monitoring)

    local = app[LOCAL_DISPATCHER] = LocalDispatcher(app, [instruments.middleware, middleware])

    async def close_local(app: web.Application) -> None:
        await local.close()

    app.on_shutdown.append(close_local)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(request: web.Request) -> web.Response:
        try:
            await store.ping()
        except Exception as exc:
            return web.Response(status=503, text=f"[-]store failed: {exc}\nreadyz check failed")
        return web.Response(text="ok")

    async def version(request: web.Request) -> web.Response:
        return json_response(discovery.version_info())

    async def aggregated(request: web.Request, core: bool) -> web.Response | None:
        accept = request.headers.get("Accept", "")
        for ctype in (AGGREGATED_V2, AGGREGATED_V2BETA1):
            if ctype.split(";", 1)[1].replace(";", "") in accept.replace(" ", "").replace(";", ""):
                body = discovery.aggregated(core, catalog=catalog)
                if not core:  # the cached document stays as it is: a copy with the aggregated APIs
                    extra = aggregated_groups(await aggregator.discovery())
                    if extra:
                        body = dict(body, items=[*(body.get("items") or []), *extra])
                if "v2beta1" in ctype:
                    body = dict(body, apiVersion="apidiscovery.k8s.io/v2beta1")
                resp = json_response(body)
                resp.content_type = "application/json"
                resp.headers["Content-Type"] = ctype
                return resp
        return None

    async def api_root(request: web.Request) -> web.Response:
        return await aggregated(request, True) or json_response(discovery.core_versions(catalog=catalog))

    # What /apis and OpenAPI list depends on the CRDs this process has seen: read it once it
    # has seen the store (catchup.py), so a kind created through another process is there.
    catch_up = rest.catch_up

    async def apis_root(request: web.Request) -> web.Response:
        await catch_up()
        found = await aggregated(request, False)
        if found is not None:
            return found
        doc = discovery.api_groups(catalog)
        extra = legacy_groups(await aggregator.discovery())
        return json_response(dict(doc, groups=[*doc["groups"], *extra]) if extra else doc)

    async def api_tail(request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.match_info["tail"].split("/") if p]
        if not parts:
            return await api_root(request)
        if len(parts) == 1:
            doc = discovery.resource_list("", parts[0], catalog)
            if doc is None:
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            return json_response(doc)
        return await rest.handle(request)

    async def apis_tail(request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.match_info["tail"].split("/") if p]
        if not parts:
            return await apis_root(request)
        if len(parts) <= 2:
            await catch_up()
        if len(parts) >= 2 and parts[1] not in catalog.group_versions().get(parts[0], ()):
            proxied = await aggregator.proxy(request, parts[0], parts[1])  # an aggregated API's
            if proxied is not None:
                return proxied
        if len(parts) == 1:
            grp = discovery.group(parts[0], catalog)
            if grp is None:
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            return json_response(grp)
        if len(parts) == 2:
            doc = discovery.resource_list(parts[0], parts[1], catalog)
            if doc is None:
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            return json_response(doc)
        return await rest.handle(request)

    async def openapi_v2(request: web.Request) -> web.Response:
        await catch_up()
        protobuf = openapi.v2_wants_protobuf(request.headers.get("Accept", ""))
        etag = openapi.v2_etag(protobuf, catalog)
        headers = {"ETag": etag, "Vary": "Accept"}
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        body = openapi.openapi_v2_protobuf(catalog) if protobuf else openapi.openapi_v2(catalog)
        ctype = openapi.V2_PROTOBUF_CONTENT_TYPE if protobuf else "application/json"
        return web.Response(body=body, headers={**headers, "Content-Type": ctype})

    async def openapi_v3_index(request: web.Request) -> web.Response:
        await catch_up()
        return json_response(openapi.openapi_v3_index(catalog))

    async def openapi_v3_doc(request: web.Request) -> web.Response:
        await catch_up()
        body = openapi.openapi_v3(request.match_info["tail"].strip("/"), catalog)
        if body is None:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        return web.Response(body=body, content_type="application/json")

    async def apf_dump(request: web.Request) -> web.Response:
        if dispatcher is None:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        what = request.match_info["what"]
        if what == "dump_priority_levels":
            text = apf_debug.priority_levels(dispatcher)
        elif what == "dump_queues":
            text = apf_debug.queues(dispatcher)
        elif what == "dump_requests":
            text = apf_debug.requests(dispatcher, bool(request.query.get("includeRequestDetails")))
        else:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        return web.Response(text=text, content_type="text/plain")

    r = app.router
    r.add_get("/debug/api_priority_and_fairness/{what}", apf_dump)
    r.add_get("/healthz", healthz)
    r.add_get("/livez", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/version", version)
    r.add_get("/metrics", instruments.handler)
    served.add_routes(r)  # before /apis/{tail}: the metrics groups are its
    r.add_get("/api", api_root)
    r.add_get("/apis", apis_root)
    r.add_route("*", "/api/{tail:.*}", api_tail)
    r.add_route("*", "/apis/{tail:.*}", apis_tail)
    r.add_post(NODE_CREDENTIAL_PATH, healthz)  # answered by the middleware (reviews.serve)
    r.add_get("/openapi/v2", openapi_v2)
    r.add_get("/openapi/v3", openapi_v3_index)
    r.add_get("/openapi/v3/{tail:.*}", openapi_v3_doc)
    if swarm is not None:
        swarm.add_routes(r)
    return app
