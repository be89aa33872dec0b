"""The node's ingress: nginx kept in step with the cluster's Ingresses (a NodeComponent).

Every node runs its own nginx (ingress-nginx's DaemonSet mode, built in), so an Ingress
answers on every node's address at ``--ingress-http-port`` / ``--ingress-https-port``.
Events (an Ingress, IngressClass, Service or TLS Secret changed) only wake the loop; a sync
renders the whole configuration (milliseconds for hundreds of Ingresses) and, when the text
changed, has nginx test it, swaps it in and reloads. Bursts are coalesced: a sync starts a
few milliseconds after the first event and at most every ``MIN_INTERVAL`` seconds.

When nginx refuses a candidate, the line it names tells which Ingress wrote it: that
Ingress's last good version (or nothing, if it never had one) is used instead and the
candidate is tried again, so one broken Ingress never blocks the others nor replaces a
working configuration; it gets a ``ConfigRejected`` event with nginx's message.

A quiet loop looks every ``WATCHDOG_SECONDS`` that nginx still runs, and starts it again if
it was killed.

The node may read only the Secrets that Ingresses name (bosun.security.authz.node), one
watch per Secret (``metadata.name=`` field selector), as the kubelet watches its pods' Secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api.registry import must_by_plural
from bosun.client.events import EventRecorder
from bosun.client.informer import Informer
from bosun.client.shared import SharedInformers
from bosun.network.base import NodeNetworkContext
from bosun.network.coalesce import Pacing, run_coalesced
from bosun.network.ingress.classes import ours_filter
from bosun.network.ingress.model import Problem, Routes, build, ingress_key
from bosun.network.ingress.nginx import Nginx
from bosun.network.ingress.render import Settings, render
from bosun.network.ingress.tls import CertStore

log = logging.getLogger(__name__)
Obj = dict[str, Any]

INGRESSES = must_by_plural("networking.k8s.io", "v1", "ingresses")
CLASSES = must_by_plural("networking.k8s.io", "v1", "ingressclasses")
SERVICES = must_by_plural("", "v1", "services")
SECRETS = must_by_plural("", "v1", "secrets")
MIN_INTERVAL = 0.1
MAX_RETRY_PAUSE = 30.0
SECRET_SYNC_SECONDS = 5.0
MAX_REFUSALS = 8  # Ingresses set aside in one sync before giving up on it
WATCHDOG_SECONDS = 10.0  # how often a quiet loop checks that nginx still runs


def tls_secrets(ing: Obj) -> set[tuple[str, str]]:
    ns = (ing.get("metadata") or {}).get("namespace") or ""
    return {(ns, str(t["secretName"])) for t in (ing.get("spec") or {}).get("tls") or [] if t.get("secretName")}


class NodeIngress:
    def __init__(self, ctx: NodeNetworkContext) -> None:
        self.client = ctx.client
        self.informers: SharedInformers = ctx.informers
        self.ingresses = ctx.informers.get(INGRESSES)
        self.classes = ctx.informers.get(CLASSES)
        self.services = ctx.informers.get(SERVICES)
        state = ctx.state_dir / "ingress"
        self.nginx = Nginx(state)
        self.certs = CertStore(state / "certs")
        self.settings = Settings(http_port=ctx.ingress_http_port, https_port=ctx.ingress_https_port,
                                 state_dir=state, default_cert="")
        self.recorder = EventRecorder(ctx.client, "bosun-ingress", host=ctx.node_name)
        self._secrets: dict[tuple[str, str], Informer] = {}
        self._last_good: dict[str, Obj] = {}  # Ingresses of the running configuration
        self._set_aside: dict[str, str] = {}  # Ingress key -> resourceVersion nginx refused
        self._reported: set[Problem] = set()
        self._text = ""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.watchdog = WATCHDOG_SECONDS
        self.syncs = 0
        self.reloads = 0

    async def start(self) -> None:
        if not Nginx.available():
            log.error("ingress: nginx not found (Debian package nginx): Ingresses are not served on this node")
            return
        for informer in (self.ingresses, self.classes, self.services):
            informer.add_handler(self._poke, lambda _old, _new: self._wake.set(), self._poke)
        await self.informers.start()
        self.settings = Settings(self.settings.http_port, self.settings.https_port, self.settings.state_dir,
                                 default_cert=self.certs.default_cert())
        if self.nginx.master() is not None:
            with contextlib.suppress(OSError):
                self._text = self.nginx.conf.read_text()  # adopted: no reload unless something changed
        try:
            await self.sync()
        except Exception:
            log.exception("ingress: first sync failed; retrying")
            self._wake.set()
        self._task = asyncio.create_task(self._run(), name="node-ingress")

    async def stop(self, *, remove: bool = False) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        for informer in self._secrets.values():
            await informer.stop()
        self._secrets.clear()
        await self.recorder.close()
        if remove:
            await self.nginx.remove()

    def _poke(self, _obj: Obj) -> None:
        self._wake.set()

    async def _run(self) -> None:
        await run_coalesced(self._wake, self.sync, Pacing(MIN_INTERVAL, MAX_RETRY_PAUSE, self.watchdog),
                            log, "ingress sync", on_quiet=self._nginx_gone)

    def _nginx_gone(self) -> bool:
        """Asked by a quiet loop: a killed nginx is started again by the next sync."""
        if self.nginx.master() is not None:
            return False
        log.warning("ingress: nginx is not running; starting it again")
        self._text = ""  # the next sync starts it with the current configuration
        return True

    # -- Secrets: one watch per Secret an Ingress names ---------------------------------------

    async def _watch_secrets(self, wanted: set[tuple[str, str]]) -> None:
        for ref in set(self._secrets) - wanted:
            await self._secrets.pop(ref).stop()
            self.certs.forget(*ref)
        new = []
        for ns, name in sorted(wanted - set(self._secrets)):
            informer = Informer(self.client, SECRETS, ns, field_selector=f"metadata.name={name}")
            informer.add_handler(self._poke, lambda _old, _new: self._wake.set(), self._poke)
            self._secrets[(ns, name)] = informer
            await informer.start()
            new.append(informer)
        for informer in new:
            with contextlib.suppress(TimeoutError, RuntimeError):
                await informer.wait_synced(SECRET_SYNC_SECONDS)
        for (ns, name), informer in self._secrets.items():
            if informer.has_synced:
                self.certs.update(ns, name, informer.get(ns, name))
            else:
                self.certs.unreadable(ns, name, f"could not be read within {SECRET_SYNC_SECONDS:g} s")

    # -- one sync -------------------------------------------------------------------------

    def _ours(self) -> list[Obj]:
        ours = ours_filter(self.classes.list())
        return [i for i in self.ingresses.list() if ours(i)]

    def _build(self, current: list[Obj]) -> Routes:
        chosen = []
        for ing in current:
            key = ingress_key(ing)
            if self._set_aside.get(key) == (ing.get("metadata") or {}).get("resourceVersion"):
                if key in self._last_good:
                    chosen.append(self._last_good[key])
                continue
            chosen.append(ing)
        return build(chosen, lambda ns, name: self.services.get(ns, name), self.certs.lookup)

    async def sync(self) -> None:
        current = self._ours()
        await self._watch_secrets(set().union(*(tls_secrets(i) for i in current)) if current else set())
        by_key = {ingress_key(i): i for i in current}
        self._set_aside = {k: rv for k, rv in self._set_aside.items()
                           if (by_key.get(k, {}).get("metadata") or {}).get("resourceVersion") == rv}
        refused: list[Problem] = []
        for _ in range(MAX_REFUSALS):
            t0 = time.monotonic()
            routes = self._build(current)
            text, origins = render(routes, self.settings)
            if text == self._text:
                self._last_good = dict(routes.ingresses)  # what runs (an adopted nginx too)
                break
            t1 = time.monotonic()
            refusal = await self.nginx.test(text)
            if refusal is None:
                t2 = time.monotonic()
                error = await self.nginx.apply()
                if error:
                    log.error("ingress: nginx did not start: %s", error)
                    raise RuntimeError(f"nginx did not start: {error}")
                log.info("ingress: nginx reloaded with %d Ingresses: render %.0f ms, nginx -t %.0f ms, "
                         "reload signalled in %.0f ms", len(routes.ingresses), (t1 - t0) * 1e3, (t2 - t1) * 1e3,
                         (time.monotonic() - t2) * 1e3)
                self._text = text
                self.reloads += 1
                self._last_good = dict(routes.ingresses)
                self.certs.collect({s.cert for s in routes.servers.values() if s.cert})
                break
            origin = origins[refusal.line - 1] if 0 < refusal.line <= len(origins) else ""
            if not origin or origin not in by_key:
                log.error("ingress: nginx refused the configuration: %s", refusal.message)
                for key in by_key.keys() - self._last_good.keys() | {
                        k for k, i in by_key.items() if self._last_good.get(k) is not i}:
                    refused.append(Problem(key, "Warning", "ConfigRejected",
                                           f"nginx refused the configuration: {refusal.message}; the previous "
                                           "configuration is kept"))
                break
            self._set_aside[origin] = (by_key[origin].get("metadata") or {}).get("resourceVersion") or ""
            kept = "its previous version is kept" if origin in self._last_good else "it is not served"
            refused.append(Problem(origin, "Warning", "ConfigRejected",
                                   f"nginx refused this Ingress: {refusal.message}; {kept}"))
        self._report(routes.problems + refused, by_key)
        self.syncs += 1

    def _report(self, problems: list[Problem], by_key: dict[str, Obj]) -> None:
        """An event for each problem not reported since it last appeared."""
        now = set(problems)
        for p in problems:
            if p not in self._reported and p.ingress in by_key:
                ing = {**by_key[p.ingress], "kind": INGRESSES.kind, "apiVersion": INGRESSES.api_version}
                self.recorder.event(ing, p.type, p.reason, p.message)
        self._reported = now
