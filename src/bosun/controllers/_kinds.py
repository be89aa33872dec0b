"""The kinds the cluster serves now, seen from a component: the built-in stored kinds and
the kinds of every Established CustomResourceDefinition.

The garbage collector follows owner references across all of them, and the namespace and
CRD finalizers empty them; upstream's controllers learn the same list from discovery. Here
the built-in rows come from the registry and the custom ones from an informer of CRDs, so
a new kind is seen the moment its CRD is Established, with no discovery polling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bosun.api.crd.rows import is_established, rows_of
from bosun.api.registry import STORED, Resource, must_by_plural
from bosun.client.informer import Informer
from bosun.component import ComponentContext

Obj = dict[str, Any]
CRDS = must_by_plural("apiextensions.k8s.io", "v1", "customresourcedefinitions")
# Kinds one can list, watch and delete: what a collector can act on.
_NEEDED = ("delete", "list", "watch")


def _actionable(res: Resource) -> bool:
    return res.created_as is None and all(v in res.verbs for v in _NEEDED)


BUILTIN: tuple[Resource, ...] = tuple(r for r in STORED if _actionable(r))
_BUILTIN_GVK = {(r.group, r.version, r.kind): r for r in BUILTIN}


class ServedKinds:
    """Built-in and custom kinds, with callbacks when a custom kind comes or goes."""

    def __init__(self, ctx: ComponentContext) -> None:
        self.crds: Informer = ctx.informers.get(CRDS)
        self._custom: dict[str, Resource] = {}  # CRD name -> its row (every version shares one store prefix)
        self._gvk: dict[tuple[str, str, str], Resource] = {}
        self.on_added: list[Callable[[Resource], None]] = []
        self.on_removed: list[Callable[[Resource], None]] = []
        self.crds.add_handler(self._crd, lambda _o, n: self._crd(n), self._crd_gone)

    def all(self) -> list[Resource]:
        return [*BUILTIN, *self._custom.values()]

    def custom(self) -> list[Resource]:
        return list(self._custom.values())

    def of_crd(self, crd: Obj) -> Resource | None:
        """The row to list a CRD's objects with (its first served version), served or not."""
        rows = rows_of(crd)
        return rows[0] if rows else None

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        """The row of an ownerReference's kind (any served version of it)."""
        group, _, version = api_version.rpartition("/")
        return _BUILTIN_GVK.get((group, version, kind)) or self._gvk.get((group, version, kind))

    def _crd(self, crd: Obj) -> None:
        name = str((crd.get("metadata") or {}).get("name"))
        rows = rows_of(crd) if is_established(crd) else ()
        old = self._custom.get(name)
        if rows and old is not None and old.group_plural == rows[0].group_plural:
            self._index(name, rows)
            return
        if old is not None:
            self._drop(name)
        if rows:
            self._custom[name] = rows[0]
            self._index(name, rows)
            for fn in self.on_added:
                fn(rows[0])

    def _crd_gone(self, crd: Obj) -> None:
        self._drop(str(dict(crd.get("metadata") or {}).get("name")))  # type: ignore[call-overload]

    def _index(self, name: str, rows: tuple[Resource, ...]) -> None:
        prefix = rows[0].group_plural
        self._gvk = {k: r for k, r in self._gvk.items() if r.group_plural != prefix}
        for r in rows:
            self._gvk[(r.group, r.version, r.kind)] = r

    def _drop(self, name: str) -> None:
        old = self._custom.get(name)
        if old is None:
            return
        self._gvk = {k: r for k, r in self._gvk.items() if r.group_plural != old.group_plural}
        del self._custom[name]
        for fn in self.on_removed:
            fn(old)
