"""``kubectl get`` columns for RBAC kinds, as Kubernetes prints them: roles show when they
were created; bindings show the role they grant and (``-o wide``) to whom."""

from __future__ import annotations

from datetime import datetime

from bosun.api.tables.format import AGE, NAME, Cells, Obj, age, col

ROLE_COLUMNS = [NAME, col("Created At", fmt="date")]
BINDING_COLUMNS = [NAME, col("Role"), AGE, col("Users", priority=1), col("Groups", priority=1),
                   col("ServiceAccounts", priority=1)]


def role_row(o: Obj, now: datetime) -> Cells:
    return [o["metadata"]["name"], str(o["metadata"].get("creationTimestamp") or "")]


def binding_row(o: Obj, now: datetime) -> Cells:
    ref = o.get("roleRef") or {}
    users: list[str] = []
    groups: list[str] = []
    sas: list[str] = []
    for s in o.get("subjects") or []:
        kind, name = s.get("kind"), str(s.get("name") or "")
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            sas.append(f"{s.get('namespace') or ''}/{name}")
    return [o["metadata"]["name"], f"{ref.get('kind', '')}/{ref.get('name', '')}", age(o, now),
            ", ".join(users), ", ".join(groups), ", ".join(sas)]
