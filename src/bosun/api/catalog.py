"""What one API server serves: the built-in table and the custom resources of its store.

:mod:`bosun.api.registry` is fixed at import; the CustomResourceDefinitions a store holds
are not, and several servers (on several stores) may run in one process, so each server has
its own :class:`Catalog`: the built-in rows plus, per Established CRD, one row per served
version (:mod:`bosun.api.crd.controller` keeps them in step with the watch cache). Request
decoding, discovery and OpenAPI read the catalog; what they derive from it is memoized per
``generation`` so that an unchanged catalog costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from bosun.api.registry import RESOURCES, Resource

T = TypeVar("T")
_BUILTIN_MEMO: dict[str, object] = {}


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version order (v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > other names),
    as a sort key where smaller comes first."""
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, version)


class Catalog:
    """Lookups over the built-in rows and the custom rows, by CRD name."""

    def __init__(self, builtin: Iterable[Resource] = RESOURCES) -> None:
        self._builtin = tuple(builtin)
        self._custom: dict[str, tuple[Resource, ...]] = {}
        self.generation = 0
        self._memo: dict[str, object] = {}
        self._rebuild()

    def _rebuild(self) -> None:
        rows = list(self._builtin)
        for custom in self._custom.values():
            rows.extend(custom)
        self._rows = tuple(rows)
        self._by_gvr = {(r.group, r.version, r.plural): r for r in rows}
        self._by_gvk = {(r.group, r.version, r.kind): r for r in rows}
        self.generation += 1
        self._memo = {}

    # ---- changes ------------------------------------------------------------------------

    def set_custom(self, crd_name: str, rows: tuple[Resource, ...]) -> None:
        """Serve ``rows`` for a CRD (replacing what it served before)."""
        self._custom[crd_name] = rows
        self._rebuild()

    def remove_custom(self, crd_name: str) -> None:
        if self._custom.pop(crd_name, None) is not None:
            self._rebuild()

    def custom(self, crd_name: str) -> tuple[Resource, ...]:
        return self._custom.get(crd_name, ())

    def custom_names(self) -> list[str]:
        return list(self._custom)

    # ---- lookups ------------------------------------------------------------------------

    def resources(self) -> tuple[Resource, ...]:
        return self._rows

    def by_plural(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        group, _, version = api_version.rpartition("/")
        return self._by_gvk.get((group, version, kind))

    def group_versions(self) -> dict[str, list[str]]:
        """Served versions per group, the preferred first ("" is core)."""
        return self.memo("group_versions", self._group_versions)

    def _group_versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self._rows:
            versions = out.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)
        for group, versions in out.items():
            if any(r.custom is not None for r in self._rows if r.group == group):
                versions.sort(key=version_priority)
        return out

    def by_group_plural(self, group_plural: str) -> Resource | None:
        """The row of a store prefix (``deployments.apps``): one of a custom resource's
        versions, any of which reads every object of the prefix."""
        table = self.memo("by group plural", lambda: {r.group_plural: r for r in reversed(self._rows)})
        return table.get(group_plural)

    def stored(self) -> list[Resource]:
        """One row per store prefix."""
        return self.memo("stored", self._stored)

    def _stored(self) -> list[Resource]:
        # A view served by conversion (autoscaling/v1 of HPAs, events.k8s.io's Events) is
        # never the stored one, and has no store prefix of its own.
        rows = [r for r in reversed(self._rows) if r.converter is None]
        return list({r.group_plural: r for r in rows}.values())

    def resources_in(self, group: str, version: str) -> list[Resource]:
        return [r for r in self._rows if r.group == group and r.version == version]

    def memo(self, key: str, build: Callable[[], T]) -> T:
        """``build()``, kept until the catalog next changes. Catalogs serving the built-in
        rows alone share one memo: the OpenAPI documents cost most of a second to build, and
        tests run many servers in one process."""
        memo = _BUILTIN_MEMO if not self._custom and self._builtin is RESOURCES else self._memo
        if key not in memo:
            memo[key] = build()
        return memo[key]  # type: ignore[return-value]


BUILTIN = Catalog()
"""The built-in rows alone (what a server with no CRDs serves; tools and tests use it)."""
