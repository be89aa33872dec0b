"""The admission chain: small plugins, in order, between a kind's strategy and the store.

As in Kubernetes, a write passes two phases. *Mutating* plugins run after defaults and
before validation and may change the object (a pod's priority from its PriorityClass).
*Validating* plugins run after validation, just before the write, and may refuse it or
reserve what the object needs (a Service's cluster IP): what they reserve they give back
through :meth:`Request.on_failure` if the write then fails, and what the write frees they
release through :meth:`Request.on_success`. A plugin says which resources and operations
it handles; the chain asks only those, so a write of a kind no plugin cares about costs one
dict lookup.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bosun.api.admission.metrics import AdmissionMetrics

if TYPE_CHECKING:
    from bosun.api.registry import Resource
    from bosun.security.identity import User

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
CREATE: Operation = "CREATE"
UPDATE: Operation = "UPDATE"
DELETE: Operation = "DELETE"
# A streaming subresource opened (pods/exec, attach, portforward): ``obj`` is its options
# (PodExecOptions...), which the mutating phase may change; asked before anything is proxied.
CONNECT: Operation = "CONNECT"
Obj = dict[str, Any]
Hook = Callable[[], Awaitable[None]]

# The warnings admission gives the request being served (``Warning`` headers of its response):
# set per request by the app's middleware; None outside a request (the server's own writes).
WARNINGS: ContextVar[list[str] | None] = ContextVar("admission_warnings", default=None)


class Reader(Protocol):
    """What plugins may read: objects as the API serves them (the storage, in the server)."""

    async def get(self, res: Resource, ns: str | None, name: str) -> Obj: ...

    async def list(self, res: Resource, ns: str | None) -> tuple[list[Obj], str, str]: ...


@dataclass(slots=True)
class Request:
    """One write as admission sees it. ``obj`` is the object to be written (on DELETE, the
    object being deleted); ``old`` the stored one on UPDATE."""

    operation: Operation
    res: Resource
    namespace: str | None
    name: str
    obj: Obj
    old: Obj | None = None
    subresource: str | None = None
    dry_run: bool = False
    # Who writes (None: the server itself, or a caller that did not say).
    user: User | None = None
    # A DELETE that is the removal following the last finalizer's (an update's), not a
    # client's request: what it releases is released, but nothing outside the server is asked.
    finalizing: bool = False
    _undo: list[Hook] = field(default_factory=list)
    _done: list[Hook] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Tell the client without refusing the write (kubectl prints ``Warning: ...``)."""
        sink = WARNINGS.get()
        if sink is not None and message not in sink:
            sink.append(message)

    def on_failure(self, hook: Hook) -> None:
        """Run ``hook`` if the write does not happen (give back a reservation)."""
        self._undo.append(hook)

    def on_success(self, hook: Hook) -> None:
        """Run ``hook`` once the write is stored (release what the old object held)."""
        self._done.append(hook)

    async def failed(self) -> None:
        hooks, self._undo, self._done = self._undo, [], []
        for hook in reversed(hooks):
            await hook()

    async def succeeded(self) -> None:
        hooks, self._undo, self._done = self._done, [], []
        for hook in hooks:
            await hook()


class Plugin(Protocol):
    """One admission step. ``admit`` changes ``req.obj`` (mutating plugins), raises an
    APIError to refuse the write, or registers hooks on the request."""

    name: str
    mutating: bool

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool: ...

    async def admit(self, req: Request) -> None: ...


class AdmissionChain:
    """The plugins of both phases, in order; each phase runs the plugins that handle the
    request's resource, operation and subresource, and is timed into ``metrics``."""

    def __init__(self, plugins: Sequence[Plugin], metrics: AdmissionMetrics | None = None) -> None:
        self.plugins = tuple(plugins)
        self.metrics = metrics or AdmissionMetrics()
        self._for: dict[tuple[str, str, Operation, str | None, bool], tuple[Plugin, ...]] = {}

    def _handling(self, req: Request, mutating: bool) -> tuple[Plugin, ...]:
        key = (req.res.group, req.res.plural, req.operation, req.subresource, mutating)
        found = self._for.get(key)
        if found is None:
            found = self._for[key] = tuple(
                p for p in self.plugins
                if p.mutating == mutating and p.handles(req.res, req.operation, req.subresource))
        return found

    async def mutate(self, req: Request) -> None:
        started = time.perf_counter()
        try:
            for plugin in self._handling(req, True):
                await plugin.admit(req)
        except BaseException:
            self.metrics.observe_step(True, req.operation, True, time.perf_counter() - started)
            raise
        self.metrics.observe_step(True, req.operation, False, time.perf_counter() - started)

    async def validate(self, req: Request) -> None:
        """The validating phase; if a plugin refuses, what earlier ones reserved is given back."""
        started = time.perf_counter()
        try:
            for plugin in self._handling(req, False):
                await plugin.admit(req)
        except BaseException:
            self.metrics.observe_step(False, req.operation, True, time.perf_counter() - started)
            await req.failed()
            raise
        self.metrics.observe_step(False, req.operation, False, time.perf_counter() - started)
