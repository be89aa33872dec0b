"""A container's environment: env/envFrom/valueFrom resolved, then ``$(VAR)`` expansion.

Order and expansion follow Kubernetes exactly (users port manifests and expect the same
values): envFrom first, then env in order, each value expanded against what came before;
command and args are expanded against the final environment; ``$$`` escapes a dollar and
an unknown ``$(VAR)`` stays as written.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from bosun.agent.refs import ConfigError, RefFetcher
from bosun.api.quantity import parse_quantity

Pod = dict[str, Any]
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _VAR.sub(sub, text)


def field_value(pod: Pod, path: str) -> str:
    """The value of a downward-API fieldRef."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"), "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(i.get("ip", "") for i in status.get("hostIPs") or []),
        "status.podIPs": ",".join(i.get("ip", "") for i in status.get("podIPs") or []),
    }
    if path in simple:
        return str(simple[path] or "")
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(pod: Pod, container_name: str, ref: dict[str, Any], allocatable: dict[str, str]) -> str:
    """limits.cpu etc., divided by ``divisor`` and rounded up; an unset limit is the node's
    allocatable, as in Kubernetes."""
    name = ref.get("containerName") or container_name
    containers = [*((pod.get("spec") or {}).get("containers") or []),
                  *((pod.get("spec") or {}).get("initContainers") or [])]
    container = next((c for c in containers if c.get("name") == name), None)
    if container is None:
        raise ConfigError(f"resourceFieldRef: container {name!r} not found")
    kind, _, res = str(ref.get("resource") or "").partition(".")
    values = (container.get("resources") or {}).get(kind) or {}
    raw = values.get(res)
    if raw is None and kind == "requests":
        raw = ((container.get("resources") or {}).get("limits") or {}).get(res)
    if raw is None:
        raw = allocatable.get(res, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor == 0:
        divisor = Decimal(1)
    return str(math.ceil(parse_quantity(raw) / divisor))


async def resolve(pod: Pod, container: dict[str, Any], refs: RefFetcher, allocatable: dict[str, str],
                  base: dict[str, str] | None = None) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(env, command, args) of one container, all references and $(VAR)s resolved; ``base``
    (the Services' variables) comes first and may be overridden."""
    env: dict[str, str] = dict(base or {})
    for src in container.get("envFrom") or []:
        prefix = str(src.get("prefix") or "")
        if "configMapRef" in src:
            ref = src["configMapRef"]
            data = await refs.all("configmap", str(ref.get("name")), bool(ref.get("optional")))
        elif "secretRef" in src:
            ref = src["secretRef"]
            data = await refs.all("secret", str(ref.get("name")), bool(ref.get("optional")))
        else:
            continue
        for k, v in data.items():
            env[prefix + k] = v.decode("utf-8", "replace")
    for item in container.get("env") or []:
        name = str(item.get("name"))
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value") or ""), env)
            continue
        src = item["valueFrom"] or {}
        value: str | None
        if "fieldRef" in src:
            value = field_value(pod, str(src["fieldRef"].get("fieldPath")))
        elif "resourceFieldRef" in src:
            value = resource_value(pod, str(container.get("name")), src["resourceFieldRef"], allocatable)
        elif "configMapKeyRef" in src:
            raw = await refs.key("configmap", src["configMapKeyRef"])
            value = None if raw is None else raw.decode("utf-8", "replace")
        elif "secretKeyRef" in src:
            raw = await refs.key("secret", src["secretKeyRef"])
            value = None if raw is None else raw.decode("utf-8", "replace")
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom")
        if value is not None:
            env[name] = value
    command = [expand(str(a), env) for a in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    return list(env.items()), command, args
