"""Cluster IPs and node ports of Services, reserved at admission (Kubernetes does it in the
Service registry; here it is one plugin, so the generic write path never names a kind)."""

from __future__ import annotations

from bosun.api import errors
from bosun.api.admission.base import DELETE, UPDATE, Operation, Request
from bosun.api.allocators import AllocationError, ServiceAllocator
from bosun.api.registry import Resource, must_by_plural
from bosun.api.storecall import call_store

SERVICES = must_by_plural("", "v1", "services")


class ServiceIPs:
    """On create and update, reserve the IP and node ports the Service asks for (or free
    ones); on a failed write give them back; once an update or delete is stored, release
    what the old object held and the new one does not. A dry run reserves nothing."""

    name = "ServiceIPAllocation"
    mutating = False

    def __init__(self, allocator: ServiceAllocator) -> None:
        self.allocator = allocator

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == SERVICES and subresource is None

    async def admit(self, req: Request) -> None:
        if req.dry_run:
            return
        alloc = self.allocator
        if req.operation == DELETE:
            gone = req.obj
            req.on_success(lambda: alloc.release(gone))
            return
        try:
            taken = await call_store(alloc.allocate(req.obj, req.old))
        except AllocationError as exc:
            raise errors.invalid_object(req.res.kind, req.name, [exc.error], req.res.group) from exc
        req.on_failure(lambda: alloc.release_keys(taken))
        if req.operation == UPDATE and req.old is not None:
            old, new = req.old, req.obj
            req.on_success(lambda: alloc.release(old, keep=new))



