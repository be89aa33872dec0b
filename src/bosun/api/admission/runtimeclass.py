"""Kubernetes' RuntimeClass admission: a pod naming a RuntimeClass gets the class's pod
overhead and scheduling constraints (node selector, tolerations), so the scheduler and quotas
see what the sandbox costs and where it can run; a pod naming a class that does not exist is
refused, as upstream refuses it."""

from __future__ import annotations

from typing import Any

from bosun.api import errors
from bosun.api.admission.base import Obj, Reader, Request
from bosun.api.admission.newpod import NewPodMutation
from bosun.api.errors import APIError
from bosun.api.registry import must_by_plural

RUNTIME_CLASSES = must_by_plural("node.k8s.io", "v1", "runtimeclasses")


class RuntimeClass(NewPodMutation):
    name = "RuntimeClass"

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    async def admit_spec(self, req: Request, spec: dict[str, Any]) -> None:
        if not isinstance(spec.get("runtimeClassName"), str):
            return
        cls_name = spec["runtimeClassName"]
        try:
            rc: Obj = await self.reader.get(RUNTIME_CLASSES, None, cls_name)
        except APIError as exc:
            if exc.code != 404:
                raise
            raise self._refuse(req, f'RuntimeClass "{cls_name}" not found') from exc
        overhead = (rc.get("overhead") or {}).get("podFixed")
        if overhead:
            if spec.get("overhead") not in (None, overhead):
                raise self._refuse(req, "Pod's Overhead doesn't match RuntimeClass's defined Overhead")
            spec["overhead"] = dict(overhead)
        scheduling = rc.get("scheduling") or {}
        self._merge_node_selector(req, spec, scheduling.get("nodeSelector") or {})
        tolerations: list[Any] = list(spec.get("tolerations") or [])
        added = [t for t in scheduling.get("tolerations") or [] if t not in tolerations]
        if added:
            spec["tolerations"] = [*tolerations, *added]

    def _merge_node_selector(self, req: Request, spec: dict[str, Any], wanted: dict[str, str]) -> None:
        if not wanted:
            return
        selector = dict(spec.get("nodeSelector") or {})
        for key, value in wanted.items():
            if key in selector and selector[key] != value:
                raise self._refuse(req, f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = {value}; "
                                        f"pod.spec.nodeSelector[{key}] = {selector[key]}")
            selector[key] = value
        spec["nodeSelector"] = selector

    @staticmethod
    def _refuse(req: Request, why: str) -> APIError:
        return errors.forbidden_request(f'pods "{req.name}" is forbidden: pod rejected: {why}')
