"""Create-or-update of one object, as ``bosun apply`` does it (three-way merge from the
last-applied annotation), so re-deploying an unchanged stack touches nothing and a changed
field rolls only the services it belongs to. An object whose change the server refuses as
immutable (a Job's template) is replaced."""

from __future__ import annotations

import asyncio
from typing import Any

from bosun.api.kinds import Kind, by_kind
from bosun.cli.threeway import read_last_applied, three_way_patch, with_last_applied
from bosun.client.rest import ApiError, Client

JSON = dict[str, Any]


class NotServed(Exception):
    """The server has no such kind (e.g. NetworkPolicy on a server without it)."""


def resource(obj: JSON) -> Kind:
    res = by_kind(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
    if res is None:
        raise NotServed(f"{obj.get('kind')} ({obj.get('apiVersion')})")
    return res


async def _wait_gone(client: Client, res: Kind, name: str, namespace: str, within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        try:
            await client.get(res, name, namespace)
        except ApiError as e:
            if e.not_found:
                return
            raise
        await asyncio.sleep(0.2)


async def apply_object(client: Client, obj: JSON, *, new: bool = False) -> str:
    """``created``, ``updated`` or ``unchanged``. ``new``: the object is most likely not
    there (its namespace was created just now), so it is created without reading it first,
    one round trip instead of two; should it exist after all, it is applied as usual."""
    res = resource(obj)
    meta = obj["metadata"]
    name, ns = str(meta["name"]), str(meta.get("namespace") or "")
    desired = with_last_applied(obj)
    if new:
        try:
            await client.create(res, desired, ns or None)
            return "created"
        except ApiError as e:
            if e.reason != "AlreadyExists":
                raise
    try:
        live = await client.get(res, name, ns or None)
    except ApiError as e:
        if not e.not_found:
            raise
        await client.create(res, desired, ns or None)
        return "created"
    patch = three_way_patch(read_last_applied(live), desired, live)
    if not patch:
        return "unchanged"
    try:
        await client.patch(res, name, patch, ns or None, patch_type="merge")
    except ApiError as e:
        if e.status != 422:
            raise
        await client.delete(res, name, ns or None, propagation_policy="Foreground")
        await _wait_gone(client, res, name, ns)
        await client.create(res, desired, ns or None)
    return "updated"
