"""What the plugins that fill in a new pod's spec share (Priority, RuntimeClass,
DefaultTolerationSeconds): they run once, when the pod is created (never on its
subresources, whose bodies are not pods), and a pod without a spec is left to validation,
which refuses it with the field named."""

from __future__ import annotations

import abc
from typing import Any

from bosun.api.admission.base import CREATE, Operation, Request
from bosun.api.registry import Resource, must_by_plural

PODS = must_by_plural("", "v1", "pods")


class NewPodMutation(abc.ABC):
    """A mutating admission plugin (:class:`~bosun.api.admission.base.Plugin`) for new pods."""

    name: str
    mutating = True

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == PODS and operation == CREATE and subresource is None

    async def admit(self, req: Request) -> None:
        spec = req.obj.get("spec")
        if isinstance(spec, dict):
            await self.admit_spec(req, spec)

    @abc.abstractmethod
    async def admit_spec(self, req: Request, spec: dict[str, Any]) -> None:
        """Change the new pod's ``spec`` (``req.obj["spec"]``), or refuse the pod."""
