"""Kubernetes' Priority admission: a pod's ``spec.priority`` comes from its PriorityClass."""

from __future__ import annotations

from typing import Any

from bosun.api import errors
from bosun.api.admission.base import Obj, Reader, Request
from bosun.api.admission.newpod import NewPodMutation
from bosun.api.errors import APIError
from bosun.api.registry import must_by_plural

PRIORITY_CLASSES = must_by_plural("scheduling.k8s.io", "v1", "priorityclasses")
# Built in, as in every Kubernetes cluster (they need no object).
SYSTEM_PRIORITY_CLASSES = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}


class Priority(NewPodMutation):
    """A new pod gets the value (and preemption policy) of the class it names, or of the
    cluster's global default class when it names none; a pod naming a class that does not
    exist is refused."""

    name = "Priority"

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    async def admit_spec(self, req: Request, spec: dict[str, Any]) -> None:
        cls_name = spec.get("priorityClassName")
        pc: Obj | None = None
        if isinstance(cls_name, str) and cls_name:
            if cls_name in SYSTEM_PRIORITY_CLASSES:
                pc = {"value": SYSTEM_PRIORITY_CLASSES[cls_name]}
            else:
                try:
                    pc = await self.reader.get(PRIORITY_CLASSES, None, cls_name)
                except APIError as exc:
                    if exc.code != 404:
                        raise
                    raise errors.forbidden_request(
                        f'pods "{req.name}" is forbidden: no PriorityClass with name {cls_name} was found'
                    ) from exc
        elif "priority" not in spec:
            classes, _, _ = await self.reader.list(PRIORITY_CLASSES, None)
            for candidate in classes:
                if candidate.get("globalDefault"):
                    pc = candidate
                    spec["priorityClassName"] = candidate["metadata"]["name"]
                    break
        if pc is not None:
            spec["priority"] = int(pc.get("value") or 0)
            if pc.get("preemptionPolicy"):
                spec["preemptionPolicy"] = pc["preemptionPolicy"]
