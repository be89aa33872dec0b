"""Cluster IPs and node ports for Services.

Each allocation is a key in the store created with create-if-absent, so two API servers on
one etcd can never hand out the same IP or port; the key is removed when the Service goes.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from bosun.api import errors
from bosun.api.errors import FieldError
from bosun.store.base import KeyExistsError, NotFoundError, Store

IP_PREFIX = "/registry/allocations/serviceips/"
PORT_PREFIX = "/registry/allocations/nodeports/"
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
NODE_PORT_RANGE = (30000, 32767)


class AllocationError(Exception):
    def __init__(self, error: FieldError) -> None:
        super().__init__(error.detail())
        self.error = error


def needs_cluster_ip(svc: dict[str, Any]) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None"


def needs_node_ports(svc: dict[str, Any]) -> bool:
    return (svc.get("spec") or {}).get("type") in ("NodePort", "LoadBalancer")


class ServiceAllocator:
    def __init__(self, store: Store, cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self.store = store
        self.network = ipaddress.ip_network(cidr)

    @property
    def first_ip(self) -> str:
        """The address of the `kubernetes` service, as in every Kubernetes cluster."""
        return str(self.network.network_address + 1)

    async def allocate(self, svc: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
        """Fill in spec.clusterIP(s) and missing nodePorts, reserving each; returns the keys
        reserved by this call so that a failed write can give them back."""
        spec = svc.setdefault("spec", {})
        owner = f"{svc['metadata'].get('namespace')}/{svc['metadata'].get('name')}".encode()
        taken: list[str] = []
        try:
            if needs_cluster_ip(svc) and not (old and (old.get("spec") or {}).get("clusterIP")):
                ip = spec.get("clusterIP")
                if ip:
                    await self._reserve_ip(ip, owner, taken)
                else:
                    ip = await self._random_ip(owner, taken)
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
            elif old and (old.get("spec") or {}).get("clusterIP"):
                spec["clusterIP"] = old["spec"]["clusterIP"]
                spec["clusterIPs"] = old["spec"].get("clusterIPs") or [old["spec"]["clusterIP"]]
            elif spec.get("clusterIP") == "None":
                spec["clusterIPs"] = ["None"]
            if needs_node_ports(svc):
                held = {p.get("nodePort") for p in (old or {}).get("spec", {}).get("ports") or []
                        if needs_node_ports(old or {})}
                for i, port in enumerate(spec.get("ports") or []):
                    np = port.get("nodePort")
                    if np and np in held:
                        continue
                    port["nodePort"] = await self._port(np, i, owner, taken)
            else:
                for port in spec.get("ports") or []:
                    port.pop("nodePort", None)
        except BaseException:
            await self.release_keys(taken)
            raise
        return taken

    async def _reserve_ip(self, ip: str, owner: bytes, taken: list[str]) -> None:
        field = "spec.clusterIPs"
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError as exc:
            raise AllocationError(errors.invalid(field, [ip], "must be a valid IP address")) from exc
        if addr not in self.network:
            raise AllocationError(errors.invalid(
                field, [ip], f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. "
                f"The range of valid IPs is {self.network}"))
        try:
            await self.store.create(IP_PREFIX + ip, owner)
        except KeyExistsError as exc:
            raise AllocationError(errors.invalid(
                field, [ip], f"failed to allocate IP {ip}: provided IP is already allocated")) from exc
        taken.append(IP_PREFIX + ip)

    async def _random_ip(self, owner: bytes, taken: list[str]) -> str:
        size = self.network.num_addresses
        for _ in range(64):
            offset = random.randrange(2, size - 1)  # skip the network address and .1 (kubernetes)
            ip = str(self.network.network_address + offset)
            try:
                await self.store.create(IP_PREFIX + ip, owner)
            except KeyExistsError:
                continue
            taken.append(IP_PREFIX + ip)
            return ip
        raise AllocationError(errors.forbidden("spec.clusterIPs", "failed to allocate a cluster IP: range is full"))

    async def _port(self, wanted: int | None, index: int, owner: bytes, taken: list[str]) -> int:
        lo, hi = NODE_PORT_RANGE
        field = f"spec.ports[{index}].nodePort"
        if wanted:
            try:
                await self.store.create(f"{PORT_PREFIX}{wanted}", owner)
            except KeyExistsError as exc:
                held = await self.store.get(f"{PORT_PREFIX}{wanted}")
                by = f" (in use by service {held.value.decode(errors='replace')})" if held is not None else ""
                raise AllocationError(errors.invalid(field, wanted, f"provided port is already allocated{by}")) from exc
            taken.append(f"{PORT_PREFIX}{wanted}")
            return wanted
        for _ in range(64):
            port = random.randint(lo, hi)
            try:
                await self.store.create(f"{PORT_PREFIX}{port}", owner)
            except KeyExistsError:
                continue
            taken.append(f"{PORT_PREFIX}{port}")
            return port
        raise AllocationError(errors.forbidden(field, "failed to allocate a node port: range is full"))

    async def release(self, svc: dict[str, Any], keep: dict[str, Any] | None = None) -> None:
        """Give back what ``svc`` held and ``keep`` (its replacement, on update) does not."""
        def held(s: dict[str, Any] | None) -> set[str]:
            if not s:
                return set()
            spec = s.get("spec") or {}
            keys = set()
            ip = spec.get("clusterIP")
            if ip and ip != "None":
                keys.add(IP_PREFIX + ip)
            if needs_node_ports(s):
                keys |= {f"{PORT_PREFIX}{p['nodePort']}" for p in spec.get("ports") or [] if p.get("nodePort")}
            return keys

        await self.release_keys(sorted(held(svc) - held(keep)))

    async def release_keys(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self.store.delete(key)
            except NotFoundError:
                pass
