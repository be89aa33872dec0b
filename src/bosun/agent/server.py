"""The agent's HTTPS endpoint (kubelet's port 10250): container logs, for the API server's
pods/log handler to proxy to.

Authentication: a bearer token the cluster accepts. The agent asks the API server whether
the token may read this Node (``GET /api/v1/nodes/<node>`` with it, answers cached for a
minute), as kubelet's webhook authentication does; the agent's own token is accepted at
once. The serving certificate is self-signed per node (kubelet's default), so callers
skip verification or pin it (``<data-dir>/pki/agent.crt``).

``GET /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&sinceSeconds=&timestamps=&previous=``
``GET /exec/{namespace}/{pod}/{container}?command=..`` and ``GET /attach/...`` (WebSocket; see
:mod:`bosun.agent.exec_server` and :mod:`bosun.agent.attach_server`);
``GET /portForward/{namespace}/{pod}`` (WebSocket; see :mod:`bosun.agent.portforward`)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bosun.agent import logs, stats
from bosun.agent.attach_server import AttachHandler
from bosun.agent.exec_server import ExecHandler
from bosun.agent.portforward import PortForwardHandler
from bosun.agent.runtime.base import RuntimeDriver
from bosun.agent.scrape import PodScraper
from bosun.agent.volumestats import VolumeStats
from bosun.client.rest import ApiError, Client

AUTH_CACHE_SECONDS = 60.0


def ensure_serving_cert(pki: Path, hosts: list[str]) -> tuple[Path, Path]:
    import ipaddress

    cert_path, key_path = pki / "agent.crt", pki / "agent.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    pki.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{hosts[0]}@{int(time.time())}")])
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


class AgentServer:
    def __init__(self, client: Client, node_name: str, own_token: str, pki: Path, hosts: list[str],
                 find_pod: Callable[[str, str], dict[str, Any] | None], pods_dir: Path,
                 container_running: Callable[[str, str], Awaitable[bool]], driver: RuntimeDriver | None = None,
                 scraper: PodScraper | None = None) -> None:
        self.client = client
        self.node_name = node_name
        self.own_token = own_token
        self.pki = pki
        self.hosts = hosts
        self.find_pod = find_pod
        self.pods_dir = pods_dir
        self.container_running = container_running
        self.driver = driver
        self.scraper = scraper  # pods' custom metrics, served with the summary
        self._auth_cache: dict[str, tuple[bool, float]] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", self._healthz)
        if self.driver is not None:
            driver, find_pod = self.driver, self.find_pod
            app.router.add_get("/exec/{namespace}/{pod}/{container}", ExecHandler(driver, find_pod).handle)
            app.router.add_get("/attach/{namespace}/{pod}/{container}", AttachHandler(driver, find_pod).attach)
            app.router.add_get("/portForward/{namespace}/{pod}", PortForwardHandler(driver, find_pod).handle)
            stats.register(app, driver, self.node_name, scraper=self.scraper, fs_path=self.pods_dir,  # /stats, /metrics
                           volumes=VolumeStats(self.client, find_pod))
        cert, key = ensure_serving_cert(self.pki, self.hosts)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ctx)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _allowed(self, token: str) -> bool:
        if self.own_token and token == self.own_token:
            return True
        hit = self._auth_cache.get(token)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        # Asked through the client's own transport: with several managers, of whichever
        # answers now (bosun.client.failover), not of the one this agent first talked to.
        try:
            await asyncio.wait_for(self.client.request("GET", f"/api/v1/nodes/{self.node_name}",
                                                       headers={"Authorization": f"Bearer {token}"}), 10)
            ok = True
        except ApiError:
            ok = False
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False
        self._auth_cache[token] = (ok, time.monotonic() + AUTH_CACHE_SECONDS)
        return ok

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or not await self._allowed(token.strip()):
            return web.Response(status=401, text="Unauthorized\n")
        resp: web.StreamResponse = await handler(request)
        return resp

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        pod = self.find_pod(ns, name)
        if pod is None:
            return web.Response(status=404, text=f'pod "{name}" not found in namespace "{ns}"\n')
        uid = pod["metadata"]["uid"]
        files = logs.log_files(self.pods_dir / uid / "logs" / container)
        q = request.query
        previous = q.get("previous") in ("true", "1")
        want = files[-2:-1] if previous else files[-1:]
        if not want:
            what = "previous terminated container" if previous else "container"
            return web.Response(status=400 if previous else 404,
                                text=f'{what} "{container}" in pod "{name}" not found\n')
        path = want[0]
        tail = int(q["tailLines"]) if q.get("tailLines", "").lstrip("-").isdigit() else None
        try:
            since = logs.since(q.get("sinceSeconds"), q.get("sinceTime"))
        except ValueError:
            return web.Response(status=400, text="sinceSeconds or sinceTime is not valid\n")
        timestamps = q.get("timestamps") in ("true", "1")
        data, offset = logs.read(path, tail=tail, since=since, timestamps=timestamps)
        limit = int(q["limitBytes"]) if q.get("limitBytes", "").isdigit() else None
        if limit is not None:
            data = data[:limit]
        if q.get("follow") not in ("true", "1") or previous:
            return web.Response(body=data, content_type="text/plain")
        resp = web.StreamResponse()
        resp.content_type = "text/plain"
        await resp.prepare(request)
        await resp.write(data)
        alive = asyncio.Event()
        alive.set()
        attempt = int(path.stem)

        async def still_current() -> bool:
            return (await self.container_running(uid, container)
                    and int(logs.log_files(path.parent)[-1].stem) == attempt)

        async def watch_alive() -> None:
            # Follow ends when this attempt of the container has ended (kubectl logs -f exits).
            while True:
                if not await still_current():
                    break
                await asyncio.sleep(0.5)
            alive.clear()

        watcher = asyncio.create_task(watch_alive())
        try:
            async for chunk in logs.follow(path, offset, timestamps, alive):
                await resp.write(chunk)
        finally:
            watcher.cancel()
        await resp.write_eof()
        return resp
