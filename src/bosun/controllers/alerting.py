"""Alerting: evaluates the alert rules over the API's objects, keeps their pending/firing
state, records an Event per alert that fires or resolves, and sends grouped notifications to
the receivers of the ``bosun-alerting`` ConfigMap, holding back what silences mute.

When it evaluates: right after each round of the metrics history lands (it follows the
rounds with a long poll of ``/metrics/rounds``, :mod:`bosun.monitoring.rounds`), so an
expression rule sees a value as soon as the history has it rather than up to one more
``evaluationInterval`` later; on a change of the pods, nodes or HPAs the built-in rules read
(at most every :data:`OBJECT_SPACING` seconds, with the expression rules' last results); when
a group's ``groupWait`` or ``groupInterval`` ends (:attr:`Notifier.next_at`), not at the next
evaluation after it; and every ``evaluationInterval`` when none of these came (a history
that stopped, a server without ``/metrics/rounds``).

It runs under the control plane's Lease like every controller, so of several servers only
the leader notifies anyone. Its state (what each receiver has heard) lives in memory: a new
leader starts fresh and repeats what is still firing after ``groupWait``, as an Alertmanager
that restarted without its data would. A malformed configuration is reported (an Event on
the ConfigMap, a line in the ``bosun-alerts`` status) and the last good one is kept.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections.abc import Callable

from bosun.aio import cancel_and_wait
from bosun.alerting.builtin import BUILTIN, Cluster, RuleSettings
from bosun.alerting.builtin_expr import EXPR_BUILTIN
from bosun.alerting.clustercerts import ClientCertificates
from bosun.alerting.config import (
    CONFIG_KEY,
    CONFIG_NAME,
    CONFIG_NAMESPACE,
    AlertingConfig,
    ConfigError,
    Route,
    SecretRef,
    parse_config,
)
from bosun.alerting.delivery import Courier
from bosun.alerting.engine import Engine
from bosun.alerting.exprsource import QueryError, Refreshable
from bosun.alerting.model import Alert, RuleSource
from bosun.alerting.notify import Notification, Notifier
from bosun.alerting.receivers import DeliveryError, EmailIntegration, Integration, WebhookIntegration
from bosun.alerting.rulefile import is_rule_configmap
from bosun.alerting.silences import SILENCES_NAME, load_silences, muted_by
from bosun.alerting.status import STATUS_NAME, render
from bosun.alerting.userrules import UserRules
from bosun.client.errors import ApiError
from bosun.client.informer import Informer
from bosun.client.rest import Client
from bosun.component import ComponentContext
from bosun.controllers._common import NODES, PODS, Obj, resource

log = logging.getLogger(__name__)

CONFIGMAPS = resource("", "v1", "configmaps")
SECRETS = resource("", "v1", "secrets")
HPAS = resource("autoscaling", "v2", "horizontalpodautoscalers")
RULES = {**BUILTIN, **EXPR_BUILTIN}
KNOWN_RULES = frozenset(RULES)
NO_CONFIG = "none: no bosun-alerting ConfigMap in kube-system; alerts are only recorded as Events"
QUERY_PATH = "/metrics/query"
ROUNDS_PATH = "/metrics/rounds"
# Object changes come in bursts (a rollout, a node's pods): one evaluation per this many seconds
# at most (an evaluation of the built-in rules is ~0.1 s at 10,000 pods, bench/alerts.py).
OBJECT_SPACING = 2.0
# The long poll's wait for the next round (under the client's 30 s request timeout).
ROUND_POLL = 15.0


class ClientQuerier:
    """Evaluates an expression where the history is: the API server's ``/metrics/query``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        try:
            out = await self.client.request("GET", QUERY_PATH, params={"query": expr})
        except ApiError as e:
            raise QueryError(f"query failed: {e.message or e}") from None
        except (OSError, TimeoutError) as e:
            raise QueryError(f"query failed: {e}") from None
        data = out.get("data") or {}
        if data.get("resultType") != "vector":
            raise QueryError(f"query answered {data.get('resultType')!r}, not a vector")
        return [({str(k): str(v) for k, v in (r.get("metric") or {}).items()}, float(r["value"][1]))
                for r in data.get("result") or []]


class RoundFollower:
    """Calls ``landed`` each time a new round of the metrics history is in (the long poll of
    :mod:`bosun.monitoring.rounds`); when the poll fails it tries again after ``retry``."""

    def __init__(self, client: Client, landed: Callable[[], None], retry: float) -> None:
        self.client = client
        self.landed = landed
        self.retry = retry
        self.seen: int | None = None

    async def run(self) -> None:
        while True:
            params = {} if self.seen is None else {"after": str(self.seen), "timeoutSeconds": str(ROUND_POLL)}
            try:
                out = await self.client.request("GET", ROUNDS_PATH, params=params)
            except (ApiError, OSError, TimeoutError) as e:
                log.debug("following the metrics history's rounds: %s", e)
                await asyncio.sleep(self.retry)
                continue
            count = out.get("round")
            if not isinstance(count, int):
                log.debug("following the metrics history's rounds: answer without a round: %s", out)
                await asyncio.sleep(self.retry)
                continue
            if self.seen is not None and count != self.seen:
                self.landed()
            self.seen = count


class Alerting:
    def __init__(self, ctx: ComponentContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = ctx.recorder("bosun-alerting")
        self.configmaps = ctx.informers.get(CONFIGMAPS)
        # Only TLS Secrets (the certificate rule's): the rest of the cluster's secrets stay out of this cache.
        self.tls_secrets = Informer(self.client, SECRETS, field_selector="type=kubernetes.io/tls",
                                    shared_objects=ctx.informers.shared_objects)
        cluster = Cluster(*(ctx.informers.get(r) for r in (PODS, NODES, HPAS)), self.tls_secrets,
                          ClientCertificates(self.client.config))
        # Made once: some sources remember between evaluations (restart counts, parsed certificates).
        self.sources = {name: builtin.make(cluster) for name, builtin in RULES.items()}
        self.configmaps.add_handler(self._cm_changed, lambda old, new: self._cm_changed(new), self._cm_changed)
        for r in (PODS, NODES, HPAS):
            ctx.informers.get(r).add_handler(self._obj_changed, self._obj_updated, self._obj_changed)
        self.config = AlertingConfig()
        self.config_version = ""
        self.config_status = NO_CONFIG
        self.engine = Engine()
        self.notifier = Notifier()
        self.couriers: dict[str, Courier] = {}
        self.rules: list[tuple[RuleSource, RuleSettings]] = []
        self.user_rules = UserRules()
        self.querier = ClientQuerier(self.client)
        self._wake = asyncio.Event()
        # Why the loop was woken: a full evaluation (config, a round) or only objects changed.
        self._refresh = True
        self._objects = False
        self.rounds = RoundFollower(self.client, self._round_landed, self.config.evaluation_interval)
        self._status: dict[str, str] | None = None

    def _cm_changed(self, cm: Obj) -> None:
        m = cm.get("metadata") or {}
        if (m.get("namespace") == CONFIG_NAMESPACE and m.get("name") in (CONFIG_NAME, SILENCES_NAME)) or (
                is_rule_configmap(cm)):
            self._refresh = True
            self._wake.set()

    def _round_landed(self) -> None:
        self._refresh = True
        self._wake.set()

    def _obj_changed(self, obj: Obj) -> None:
        self._objects = True
        self._wake.set()

    def _obj_updated(self, old: Obj, new: Obj) -> None:
        self._obj_changed(new)

    # -- configuration -------------------------------------------------------------------------

    async def load_config(self) -> None:
        cm = self.configmaps.get(CONFIG_NAMESPACE, CONFIG_NAME)
        version = str((cm or {}).get("metadata", {}).get("resourceVersion", ""))
        if version == self.config_version and self.rules:
            return
        self.config_version = version
        try:
            config = parse_config(((cm or {}).get("data") or {}).get(CONFIG_KEY, ""), KNOWN_RULES)
        except ConfigError as e:
            self.config_status = f"error: {e} (the last good configuration is kept)"
            assert cm is not None
            self.recorder.event(cm, "Warning", "InvalidAlertingConfig", str(e))
            if not self.rules:
                await self.apply(AlertingConfig())
            return
        if cm is None:
            self.config_status = NO_CONFIG
        else:
            self.config_status = (f"ok: {len(config.receivers)} receiver(s)" if config.receivers
                                  else "ok: no receivers; alerts are only recorded as Events")
        await self.apply(config)

    async def apply(self, config: AlertingConfig) -> None:
        self.config = config
        self.rules = []
        for name, builtin in RULES.items():
            settings = builtin.settings.overridden(config.rules[name]) if name in config.rules else builtin.settings
            if settings.enabled:
                self.rules.append((self.sources[name], settings))
        wanted: dict[str, Integration] = {}
        for rec in config.receivers.values():
            for i, w in enumerate(rec.webhooks):
                wanted[f"{rec.name}/webhook/{i}"] = WebhookIntegration(f"{rec.name}/webhook/{i}", w, self.secret)
            for i, e in enumerate(rec.emails):
                wanted[f"{rec.name}/email/{i}"] = EmailIntegration(f"{rec.name}/email/{i}", e, self.secret)
        for iid in set(self.couriers) - set(wanted):
            await self.couriers.pop(iid).close()
            for key in [k for k, g in self.notifier.groups.items() if g.integration == iid]:
                del self.notifier.groups[key]
        for iid, integration in wanted.items():
            if iid in self.couriers:
                c = self.couriers[iid]
                c.integration, c.retry_initial, c.retry_max = integration, config.retry_initial, config.retry_max
            else:
                self.couriers[iid] = Courier(integration, self.notifier.delivered, self._failed,
                                             config.retry_initial, config.retry_max)

    async def secret(self, ref: SecretRef) -> str:
        try:
            obj = await self.client.get(SECRETS, ref.name, CONFIG_NAMESPACE)
        except ApiError as e:
            raise DeliveryError(f"secret {CONFIG_NAMESPACE}/{ref.name}: {e.message or e}") from None
        raw = (obj.get("data") or {}).get(ref.key)
        if raw is None:
            raise DeliveryError(f"secret {CONFIG_NAMESPACE}/{ref.name} has no key {ref.key!r}")
        try:
            return base64.b64decode(raw).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise DeliveryError(f"secret {CONFIG_NAMESPACE}/{ref.name} key {ref.key!r} is not text") from None

    def _failed(self, integration: Integration, note: Notification, error: str) -> None:
        target = self.configmaps.get(CONFIG_NAMESPACE, CONFIG_NAME) or {
            "kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": CONFIG_NAME, "namespace": CONFIG_NAMESPACE}}
        self.recorder.event(target, "Warning", "AlertDeliveryFailed",
                            f"{integration.id}: {error}; retrying with back-off")

    def router(self, alert: Alert) -> tuple[Route, list[str]]:
        assert self.config.route is not None
        route = self.config.route.find(alert.labels)
        prefix = f"{route.receiver}/"
        return route, [iid for iid in self.couriers if iid.startswith(prefix)]

    # -- one evaluation --------------------------------------------------------------------------

    async def tick(self, now: float, refresh: bool = True) -> None:
        """One evaluation and what it sends; ``refresh``: the expression rules query the
        history again (else they hold their last results: only objects changed)."""
        await self.load_config()
        silence_cm = self.configmaps.get(CONFIG_NAMESPACE, SILENCES_NAME)
        silences, _ = load_silences((silence_cm or {}).get("data") or {})
        for cm, error in self.user_rules.sync(self.configmaps.list()):
            self.recorder.event(cm, "Warning", "InvalidAlertRules", f"{error} (this rule file is skipped)")
        user = self.user_rules.sources()
        if refresh:
            await asyncio.gather(*(s.refresh(self.querier, now) for s in user),
                                 *(s.refresh(self.querier, now) for s, _ in self.rules if isinstance(s, Refreshable)))
        changes = self.engine.evaluate([*self.rules, *((s, s.settings()) for s in user)], now)
        for a in changes.fired:
            self.recorder.event(a.involved or self._status_ref(), "Warning", "AlertFiring", f"{a.name}: {a.summary}")
        for a in changes.resolved:
            self.recorder.event(a.involved or self._status_ref(), "Normal", "AlertResolved", f"{a.name}: {a.summary}")
        muted = {a.fingerprint: sid for a in self.engine.alerts.values() if (sid := muted_by(silences, a.labels, now))}
        firing = [a for a in self.engine.firing() if a.fingerprint not in muted]
        router = self.router if self.config.route is not None else None
        for note in self.notifier.due(router, firing, set(muted), now):
            courier = self.couriers.get(note.integration)
            if courier is not None:
                courier.submit(note)
        await self._write_status(render(self.engine.alerts.values(), muted, self.config_status,
                                        self.user_rules.describe()))
        expired = [s.id for s in silences if s.ends_at <= now]
        if expired and silence_cm is not None:
            await self._patch(SILENCES_NAME, {"data": dict.fromkeys(expired)})

    def _status_ref(self) -> Obj:
        return {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": STATUS_NAME,
                                                                      "namespace": CONFIG_NAMESPACE}}

    async def _write_status(self, data: dict[str, str]) -> None:
        have = self.configmaps.get(CONFIG_NAMESPACE, STATUS_NAME)
        if data == self._status and have is not None:
            return
        if have is None:
            if not self.engine.alerts and self.configmaps.get(CONFIG_NAMESPACE, CONFIG_NAME) is None:
                return  # nothing to say, nobody asked: leave kube-system alone
            try:
                meta = {"name": STATUS_NAME, "namespace": CONFIG_NAMESPACE,
                        "labels": {"app.kubernetes.io/name": "bosun-alerting"}}
                await self.client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                                                      "data": data}, CONFIG_NAMESPACE)
            except ApiError as e:
                if e.status != 409:
                    raise
                await self._patch(STATUS_NAME, {"data": data})
        elif (have.get("data") or {}) != data:
            await self._patch(STATUS_NAME, {"data": data})
        self._status = data

    async def _patch(self, name: str, body: Obj) -> None:
        try:
            await self.client.patch(CONFIGMAPS, name, body, CONFIG_NAMESPACE)
        except ApiError as e:
            if e.status != 404:
                raise

    def _timeout(self, now: float, last_full: float, last: float) -> float:
        """How long the loop may sleep: until the next timed evaluation, the next message
        due, or (objects changed) the end of :data:`OBJECT_SPACING`."""
        until = [last_full + self.config.evaluation_interval]
        if self.notifier.next_at is not None:
            until.append(self.notifier.next_at)
        if self._objects:
            until.append(last + OBJECT_SPACING)
        return max(min(until) - now, 0.0)

    async def run(self) -> None:
        await self.ctx.informers.start()
        await self.tls_secrets.start()
        follower = asyncio.create_task(self.rounds.run(), name="alerting-rounds")
        try:
            await self.tls_secrets.wait_synced(60.0)
            last_full = last = 0.0
            while True:
                now = time.time()
                refresh = self._refresh or now - last_full >= self.config.evaluation_interval
                due = self.notifier.next_at is not None and now >= self.notifier.next_at
                if refresh or due or (self._objects and now - last >= OBJECT_SPACING):
                    self._wake.clear()
                    if refresh:
                        self._refresh = False
                    self._objects = False
                    try:
                        await self.tick(now, refresh)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("alert evaluation failed")
                    last = now
                    if refresh:
                        last_full = now
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._timeout(time.time(), last_full, last))
        finally:
            await cancel_and_wait(follower)
            await self.tls_secrets.stop()
            for c in self.couriers.values():
                await c.close()


async def run(ctx: ComponentContext) -> None:
    await Alerting(ctx).run()
