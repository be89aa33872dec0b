"""``kubectl get`` columns of ResourceQuota and LimitRange, as Kubernetes' printers write them:
a quota shows ``used/hard`` per resource, its ``limits.*`` in LIMIT and the rest in REQUEST."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bosun.api.tables.format import AGE, NAME, Cells, Obj, age, col, dig, name_of


def quota_row(o: Obj, now: datetime) -> Cells:
    hard = dig(o, "status", "hard") or {}
    used = dig(o, "status", "used") or {}
    request: list[str] = []
    limit: list[str] = []
    for name in sorted(hard):
        into = limit if name.split(".")[0] == "limits" and "." in name else request
        into.append(f"{name}: {used.get(name, '0')}/{hard[name]}")
    return [name_of(o), age(o, now), ", ".join(request), ", ".join(limit)]


def limitrange_row(o: Obj, now: datetime) -> Cells:
    return [name_of(o), dig(o, "metadata", "creationTimestamp") or ""]


PRINTERS: dict[tuple[str, str], tuple[list[Obj], Callable[[Obj, datetime], Cells]]] = {
    ("", "ResourceQuota"): (
        [NAME, AGE, col("Request", desc="Request represents a minimum amount of cpu/memory that a container "
                                        "may consume."),
         col("Limit", desc="Limits control the maximum amount of cpu/memory that a container may use independent "
                           "of contention on the node.")], quota_row),
    ("", "LimitRange"): ([NAME, col("Created At", "date", desc="CreationTimestamp is a timestamp representing the "
                                    "server time when this object was created.")], limitrange_row),
}
