"""pods/exec, pods/attach and pods/portforward: the API server checks the request, then
relays WebSocket frames between the client (kubectl) and the same endpoint of the node agent
that runs the pod.

Both legs speak the same protocol, so frames pass through unchanged: exec and attach the
remote command protocol (``v5.channel.k8s.io`` or ``v4.channel.k8s.io``, whichever the client
prefers), which the agent (:mod:`bosun.agent.exec_server`) serves and reports the exit status
on; port-forward kubectl's SPDY-over-WebSocket tunnel (``SPDY/3.1+portforward.k8s.io``), which
the agent (:mod:`bosun.agent.portforward`) terminates inside the pod's network namespace;
a client that upgrades to plain SPDY instead has the same bytes carried to that tunnel
(:mod:`bosun.api.spdy_upgrade`), and exec and attach over SPDY are translated to the agent's
channels (:mod:`bosun.api.spdy_exec`).
Everything that can be refused is refused before the upgrade, as a ``Status`` (the admission
of a CONNECT, which calls the webhooks that ask for it, included), because a
client reads errors only from a failed handshake: kubectl then retries over SPDY, which
gets the same answer, and kubectl prints it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from bosun.api import admission, errors, spdy_exec, spdy_upgrade
from bosun.api.handler import Serving
from bosun.api.objects import as_dict
from bosun.api.registry import must_by_plural
from bosun.api.requestinfo import USER
from bosun.api.target import Target

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
# kubectl's SPDY tunnel first; the channel protocols serve clients that name ports in the query.
PORT_FORWARD_PROTOCOLS = ("SPDY/3.1+portforward.k8s.io", "v4.channel.k8s.io", "v5.channel.k8s.io")
STREAM_FLAGS = ("stdin", "stdout", "stderr", "tty")
NODES = must_by_plural("", "v1", "nodes")


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true")


async def handle(h: Serving, request: web.Request, t: Target) -> web.StreamResponse:
    assert t.name is not None and t.sub in ("exec", "attach")
    command = request.query.getall("command", [])
    if t.sub == "exec" and not command:
        raise errors.bad_request("you must specify at least one command for the container")
    if not any(_flag(request, f) for f in ("stdin", "stdout", "stderr")):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    pod = await h.storage.get(t.res, t.namespace, t.name)
    container = _container(pod, t.name, request.query.get("container") or "")
    phase = as_dict(pod.get("status")).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(f"cannot {t.sub} into a container in a completed pod; current phase is {phase}")
    options: dict[str, Any] = {"kind": "PodExecOptions" if t.sub == "exec" else "PodAttachOptions",
                               "apiVersion": "v1", "container": container,
                               **{f: _flag(request, f) for f in STREAM_FLAGS}}
    if t.sub == "exec":
        options["command"] = command
    await _connect_admission(h, request, t, options)
    # A mutating webhook may have changed the options: what runs is what it left.
    if t.sub == "exec":
        command = [str(c) for c in options.get("command") or []] or command
    if options.get("container") != container:
        container = _container(pod, t.name, str(options.get("container") or ""))
    url = f"{await agent_base_url(h, pod, t.name)}/{t.sub}/{t.namespace}/{t.name}/{container}"
    params = [("command", c) for c in command] + [
        (f, "true" if _flag(request, f) else "false") for f in STREAM_FLAGS]
    if spdy_upgrade.wants_spdy(request) and spdy_exec.offers_remote_command(request):
        # Streams over SPDY, translated to the agent's channels (v5: stdin's end is a signal).
        expected = spdy_exec.expected_streams(*(_flag(request, f) for f in STREAM_FLAGS))
        return await _proxy(h, request, t.sub, url, params, PROTOCOLS[:1],
                            spdy=functools.partial(spdy_exec.serve, expected=expected))
    return await _proxy(h, request, t.sub, url, params, PROTOCOLS)


async def port_forward(h: Serving, request: web.Request, t: Target) -> web.StreamResponse:
    """pods/portforward: kubectl resolves svc/x and deploy/x to a pod itself, so this only
    ever sees a pod; the ports come inside the tunnel, one pair of streams per connection."""
    assert t.name is not None
    pod = await h.storage.get(t.res, t.namespace, t.name)
    phase = as_dict(pod.get("status")).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(f"cannot port-forward to a completed pod; current phase is {phase}")
    url = f"{await agent_base_url(h, pod, t.name)}/portForward/{t.namespace}/{t.name}"
    # The channel protocol names its ports in the query (SPDY carries them inside the tunnel).
    ports = [p.strip() for v in request.query.getall("ports", []) for p in v.split(",") if p.strip()]
    for p in ports:
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise errors.bad_request(f"invalid port {p!r} in ports: it must be a number from 1 to 65535")
    chosen = web.WebSocketResponse(protocols=PORT_FORWARD_PROTOCOLS).can_prepare(request).protocol
    if chosen in PORT_FORWARD_PROTOCOLS[1:] and not ports:
        raise errors.bad_request(f'query parameter "ports" is required with subprotocol {chosen}')
    await _connect_admission(h, request, t, {"kind": "PodPortForwardOptions", "apiVersion": "v1",
                                             **({"ports": [int(p) for p in ports]} if ports else {})})
    params = [("port", p) for p in ports]
    if spdy_upgrade.wants_spdy(request) and spdy_upgrade.offers_port_forward(request):
        # The SPDY fallback: the same SPDY session, carried to the agent's WebSocket tunnel.
        return await _proxy(h, request, "port-forward", url, params, PORT_FORWARD_PROTOCOLS[:1],
                            spdy=spdy_upgrade.serve)
    return await _proxy(h, request, "port-forward", url, params, PORT_FORWARD_PROTOCOLS)


async def _connect_admission(h: Serving, request: web.Request, t: Target, options: dict[str, Any]) -> None:
    """The admission of opening the stream, both phases as upstream: a mutating webhook may
    change ``options`` (in place), a webhook of either kind may refuse an exec."""
    assert t.name is not None
    req = admission.Request(admission.CONNECT, t.res, t.namespace, t.name, options, subresource=t.sub,
                            user=request.get(USER))
    await h.storage.admission.mutate(req)
    await h.storage.admission.validate(req)
    await req.succeeded()


SpdyServer = Callable[[web.Request, aiohttp.ClientWebSocketResponse], Awaitable[web.StreamResponse]]


async def _proxy(h: Serving, request: web.Request, what: str, url: str, params: list[tuple[str, str]],
                 protocols: tuple[str, ...], spdy: SpdyServer | None = None) -> web.StreamResponse:
    """Relay to the agent over ``protocols``; ``spdy``: the client upgrades its connection to
    SPDY itself, and this serves it, given the agent's WebSocket on the first of ``protocols``."""
    headers = {"Authorization": f"Bearer {h.node_token}"} if h.node_token else {}
    ws = web.WebSocketResponse(protocols=protocols, autoping=True, max_msg_size=0)
    ready = ws.can_prepare(request)
    if spdy is not None:
        ready = web.WebSocketReady(True, protocols[0])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False),
                                     timeout=aiohttp.ClientTimeout(sock_connect=5)) as session:
        if not ready.ok or ready.protocol not in protocols:
            await _raise_agent_refusal(session, url, params, headers)
            raise errors.bad_request(
                f"{what} is served over WebSocket (subprotocol {' or '.join(protocols)}) or over SPDY/3.1")
        try:
            upstream = await session.ws_connect(url, params=params, headers=headers, protocols=[ready.protocol],
                                                autoping=True, max_msg_size=0)
        except aiohttp.WSServerHandshakeError:
            await _raise_agent_refusal(session, url, params, headers)
            raise errors.APIError(502, "BadGateway", f"the node agent refused the {what} session") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.APIError(502, "BadGateway", f"cannot reach the node agent at {url}: {exc}") from exc
        async with upstream:
            if spdy is not None:
                return await spdy(request, upstream)
            await ws.prepare(request)
            await _relay(ws, upstream)
    return ws


def _container(pod: dict[str, Any], pod_name: str, container: str) -> str:
    spec = as_dict(pod.get("spec"))
    names = [str(c.get("name")) for c in spec.get("containers") or [] if isinstance(c, dict)]
    inits = [str(c.get("name")) for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    # kubectl debug attaches to the ephemeral container it added.
    ephemeral = [str(c.get("name")) for c in spec.get("ephemeralContainers") or [] if isinstance(c, dict)]
    if not container:
        if len(names) != 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {pod_name}, choose one of: [{' '.join(names)}]"
                + (f" or one of the init containers: [{' '.join(inits)}]" if inits else ""))
        return names[0]
    if container not in names and container not in inits and container not in ephemeral:
        raise errors.bad_request(f"container {container} is not valid for pod {pod_name}")
    return container


async def agent_base_url(h: Serving, pod: dict[str, Any], pod_name: str) -> str:
    """``https://host:port`` of the agent running the pod, from its Node's status."""
    node_name = as_dict(pod.get("spec")).get("nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {pod_name} does not have a host assigned")
    status = as_dict((await h.storage.get(NODES, None, str(node_name))).get("status"))
    port = as_dict(as_dict(status.get("daemonEndpoints")).get("kubeletEndpoint")).get("Port")
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or [] if isinstance(a, dict)}
    host = addrs.get("InternalIP") or addrs.get("Hostname")
    if not port or not host:
        raise errors.bad_request(f'node "{node_name}" has no node agent endpoint')
    host = f"[{host}]" if ":" in str(host) else str(host)
    return f"https://{host}:{port}"


async def _raise_agent_refusal(session: aiohttp.ClientSession, url: str, params: list[tuple[str, str]],
                               headers: dict[str, str]) -> None:
    """Ask the agent again without an upgrade: it answers why it would refuse (as text), or
    426 when it would have accepted. A WebSocket handshake failure carries no reason."""
    try:
        async with session.get(url, params=params, headers=headers) as resp:
            if resp.status in (101, 426, 200):
                return
            text = (await resp.text())[:500].strip() or f"the node agent answered {resp.status}"
    except (aiohttp.ClientError, OSError) as exc:
        raise errors.APIError(502, "BadGateway", f"cannot reach the node agent at {url}: {exc}") from exc
    if resp.status == 404:
        raise errors.APIError(404, "NotFound", text)
    if resp.status == 401:
        raise errors.APIError(502, "BadGateway", f"the node agent did not accept the API server's credentials: {text}")
    raise errors.bad_request(text) if resp.status == 400 else errors.APIError(502, "BadGateway", text)


_Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def _pump(src: _Socket, dst: _Socket) -> None:
    """Copy frames one way until ``src`` ends, then close ``dst`` so its peer sees the end too."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)
    await dst.close()


async def _relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Copy frames both ways until either side closes, then close the other."""
    tasks = [asyncio.create_task(_pump(client, upstream)), asyncio.create_task(_pump(upstream, client))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
