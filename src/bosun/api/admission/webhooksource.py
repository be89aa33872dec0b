"""The webhook configurations, compiled, and the objects a call needs, read from the watch
cache: no write reads the store to learn which webhooks to call.

The cache tells :meth:`CachedWebhooks.observe` about every event after it has applied it, so
a changed configuration drops its phase's compiled list and the next write compiles the
current configurations again (sorted by name, as upstream orders them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bosun.api.admission.webhookmatch import Webhook, compile_configuration
from bosun.api.errors import APIError
from bosun.api.registry import Resource, must_by_plural

if TYPE_CHECKING:
    from bosun.api.watchcache import CachedEvent, WatchCache

Obj = dict[str, Any]
VALIDATING = must_by_plural("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
MUTATING = must_by_plural("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")


class CachedWebhooks:
    """:class:`bosun.api.admission.webhooks.WebhookSource` over the server's watch cache."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self._compiled: dict[bool, tuple[Webhook, ...]] = {}

    def observe(self, ev: CachedEvent) -> None:
        if ev.group_plural == VALIDATING.group_plural:
            self._compiled.pop(False, None)
        elif ev.group_plural == MUTATING.group_plural:
            self._compiled.pop(True, None)

    def webhooks(self, mutating: bool) -> Sequence[Webhook]:
        found = self._compiled.get(mutating)
        if found is None:
            bucket = self.cache.resource((MUTATING if mutating else VALIDATING).group_plural).all
            hooks: list[Webhook] = []
            for key in sorted(bucket.items):
                try:
                    obj = bucket.items[key].obj
                except APIError:
                    continue  # sealed with a key this server lacks: its reads fail alike
                hooks += compile_configuration(obj)
            found = self._compiled[mutating] = tuple(hooks)
        return found

    def current(self, res: Resource, namespace: str | None, name: str) -> Obj | None:
        entry = self.cache.resource(res.group_plural).get(res.key(namespace, name))
        if entry is None:
            return None
        try:
            return entry.obj
        except APIError:
            return None
