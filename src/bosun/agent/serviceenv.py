"""Docker-link-style environment variables for Services, as kubelet sets them.

Every container learns the API server's address from ``KUBERNETES_SERVICE_HOST`` and
``KUBERNETES_SERVICE_PORT`` (what in-cluster clients read first); with
``enableServiceLinks`` (the default) it also gets ``<NAME>_SERVICE_HOST``,
``<NAME>_PORT_<port>_TCP`` and friends for each Service of its namespace that existed when
it started. The container's own ``env`` overrides any of them.
"""

from __future__ import annotations

from typing import Any

from bosun.api.registry import must_by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client

SERVICES = must_by_plural("", "v1", "services")
Obj = dict[str, Any]


def _links(svc: Obj) -> dict[str, str]:
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP")
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    if not ip or ip == "None" or not ports:
        return {}
    name = str(svc["metadata"]["name"]).upper().replace("-", "_")
    out = {f"{name}_SERVICE_HOST": ip, f"{name}_SERVICE_PORT": str(ports[0].get("port"))}
    for p in ports:
        if p.get("name"):
            out[f"{name}_SERVICE_PORT_{str(p['name']).upper().replace('-', '_')}"] = str(p.get("port"))
    first = ports[0]
    out[f"{name}_PORT"] = f"{str(first.get('protocol') or 'TCP').lower()}://{ip}:{first.get('port')}"
    for p in ports:
        proto = str(p.get("protocol") or "TCP")
        prefix = f"{name}_PORT_{p.get('port')}_{proto.upper()}"
        out[prefix] = f"{proto.lower()}://{ip}:{p.get('port')}"
        out[f"{prefix}_PROTO"] = proto.lower()
        out[f"{prefix}_PORT"] = str(p.get("port"))
        out[f"{prefix}_ADDR"] = ip
    return out


async def service_env(client: Client, pod: Obj) -> dict[str, str]:
    namespace = str(pod["metadata"]["namespace"])
    services: list[Obj] = []
    if (pod.get("spec") or {}).get("enableServiceLinks") is not False:
        services = list((await client.list(SERVICES, namespace)).get("items") or [])
    if namespace != "default" or not services:
        try:
            services.append(await client.get(SERVICES, "kubernetes", "default"))
        except ApiError as exc:
            if exc.status != 404:
                raise
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: str(s["metadata"]["name"])):
        env.update(_links(svc))
    return env
