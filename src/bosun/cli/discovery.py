"""Kinds the CLI does not know from the built-in registry, learnt from the server's discovery.

Custom resources (CRDs) exist only on the server, so ``bosun get widgets`` and ``bosun apply``
of a custom object ask the server's aggregated discovery (one ``GET /apis``) the first time
a name or kind is not a built-in one, as kubectl does (:func:`bosun.cli.common.resolve`
keeps the answer for the command).
"""

from __future__ import annotations

from typing import Any

import orjson

from bosun.api.kinds import Kind
from bosun.client.rest import ApiError, Client

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def rows(doc: dict[str, Any]) -> list[Kind]:
    """Registry rows for every resource (not subresource) of an APIGroupDiscoveryList."""
    out: list[Kind] = []
    for group in doc.get("items") or []:
        gname = str((group.get("metadata") or {}).get("name") or "")
        for version in group.get("versions") or []:
            for r in version.get("resources") or []:
                kind = str((r.get("responseKind") or {}).get("kind") or "")
                out.append(Kind(gname, str(version.get("version")), kind, str(r.get("resource")),
                                    r.get("scope") == "Namespaced", tuple(r.get("shortNames") or ()),
                                    tuple(r.get("categories") or ()), verbs=tuple(r.get("verbs") or ())))
    return out


async def fetch(client: Client) -> list[Kind]:
    try:
        raw = await client.request_raw("GET", "/apis", accept=AGGREGATED)
    except ApiError:
        return []
    return rows(orjson.loads(raw))


def find(kinds: list[Kind], name: str) -> Kind | None:
    """``widgets``, ``widget``, ``wd``, ``Widget`` or ``widgets.example.com``, as kubectl reads them."""
    name_l = name.lower()
    for r in kinds:
        names = {r.plural, r.singular, r.kind.lower(), *r.short_names}
        if name_l in names or name_l in {f"{n}.{r.group}" for n in (r.plural, r.singular, r.kind.lower())}:
            return r
    return None


def by_kind(kinds: list[Kind], api_version: str, kind: str) -> Kind | None:
    group, _, version = api_version.rpartition("/")
    return next((r for r in kinds if (r.group, r.version, r.kind) == (group, version, kind)), None)
