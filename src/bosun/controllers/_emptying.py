"""Delete every object of some kinds in one scope: what the namespace controller does to a
Terminating namespace and the CRD finalizer to a deleted CRD's kind.

One pass lists each kind, deletes what is not being deleted yet (Background propagation,
as upstream's namespace deleter), and reports what is left, so the caller can say why it
waits (upstream's NamespaceContentRemaining / NamespaceFinalizersRemaining conditions) and
come back later: objects with finalizers go only once their owners remove them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from bosun.api.registry import Resource
from bosun.client.errors import ApiError
from bosun.client.rest import Client

# Deletions in flight at once per pass: a namespace of thousands of pods empties in seconds
# without flooding the server.
CONCURRENCY = 16


@dataclass
class Emptying:
    """What one pass left: objects per kind, objects per finalizer, and failed calls."""

    remaining: Counter[Resource] = field(default_factory=Counter)
    finalizers: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.remaining and not self.errors

    def remaining_message(self) -> str:
        """Upstream's wording: ``pods. has 2 resource instances, widgets.example.com has 1 ...``."""
        parts = sorted(f"{r.plural}.{r.group} has {n} resource instances" for r, n in self.remaining.items())
        return "Some resources are remaining: " + ", ".join(parts)

    def finalizers_message(self) -> str:
        parts = sorted(f"{f} in {n} resource instances" for f, n in self.finalizers.items())
        return "Some content in the namespace has finalizers remaining: " + ", ".join(parts)

    def errors_message(self) -> str:
        return f"Failed to delete all resource types, {len(self.errors)} remaining: " + "; ".join(self.errors)


async def delete_all(client: Client, kinds: Iterable[Resource], namespace: str | None) -> Emptying:
    """One pass over ``kinds`` in ``namespace`` (None: every namespace, or cluster scope)."""
    out = Emptying()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(res: Resource, ns: str | None, name: str) -> None:
        async with gate:
            try:
                result = await client.delete(res, name, ns, propagation_policy="Background")
            except ApiError as exc:
                if exc.status != 404:
                    out.errors.append(f"{res.plural}.{res.group} {name}: {exc.message}")
                    out.remaining[res] += 1
                return
            m = result.get("metadata") or {}
            if result.get("kind") != "Status" and m.get("deletionTimestamp"):  # still there (graceful, finalizers)
                out.remaining[res] += 1
                for f in m.get("finalizers") or []:
                    out.finalizers[f] += 1

    for res in kinds:
        try:
            items, _ = await client.list_all(res, namespace if res.namespaced else None)
        except ApiError as exc:
            if exc.status != 404:  # 404: the kind went meanwhile, with its objects
                out.errors.append(f"{res.plural}.{res.group}: {exc.message}")
            continue
        jobs = []
        for obj in items:
            m = obj.get("metadata") or {}
            if m.get("deletionTimestamp"):
                out.remaining[res] += 1
                for f in m.get("finalizers") or []:
                    out.finalizers[f] += 1
                continue
            jobs.append(one(res, m.get("namespace"), str(m.get("name"))))
        await asyncio.gather(*jobs)
    return out
