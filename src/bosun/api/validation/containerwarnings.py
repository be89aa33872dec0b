"""The per-container part of upstream's pod warnings (``pkg/api/pod/warnings.go``): seccomp and
AppArmor annotations left without their fields, fractional byte counts, an env entry that hides
an earlier one (``kubectl apply`` may then drop it), and container ports that repeat or
overlap one another across the pod's containers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bosun.api.quantity import canonical_quantity, parse_quantity

Obj = dict[str, Any]
SECCOMP_CONTAINER = "container.seccomp.security.alpha.kubernetes.io/"
APPARMOR_CONTAINER = "container.apparmor.security.beta.kubernetes.io/"
BYTE_RESOURCES = ("memory", "ephemeral-storage")


def _dict(v: object) -> Obj:
    return v if isinstance(v, dict) else {}


def _list(v: object) -> list[Any]:
    return v if isinstance(v, list) else []


def containers(spec: Obj, prefix: str) -> Iterator[tuple[Obj, str]]:
    """Every container with its path, in upstream's VisitContainersWithPath order."""
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(_list(spec.get(field))):
            if isinstance(c, dict):
                yield c, f"{prefix}spec.{field}[{i}]"


def fractional(value: object) -> str | None:
    """The canonical text of a quantity that is not a whole number of bytes (None: it is)."""
    try:
        q = parse_quantity(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return None  # validation reports it
    if q == q.to_integral_value():
        return None
    return canonical_quantity(value) if isinstance(value, str | int | float) else str(value)


def container_warnings(meta: Obj, spec: Obj, prefix: str) -> list[str]:
    out: list[str] = []
    annotations = _dict(meta.get("annotations"))
    pod_context = _dict(spec.get("securityContext"))
    for c, path in containers(spec, prefix):
        context = _dict(c.get("securityContext"))
        name = str(c.get("name") or "")
        if context.get("seccompProfile") is None and SECCOMP_CONTAINER + name in annotations:
            out.append(f"{prefix}metadata.annotations[{SECCOMP_CONTAINER}{name}]: non-functional in v1.27+; "
                       'use the "seccompProfile" field instead')
        # A pod's own AppArmor annotations are reconciled with its fields instead (upstream).
        if (prefix and pod_context.get("appArmorProfile") is None and context.get("appArmorProfile") is None
                and APPARMOR_CONTAINER + name in annotations):
            out.append(f"{prefix}metadata.annotations[{APPARMOR_CONTAINER}{name}]: deprecated since v1.30; "
                       'use the "appArmorProfile" field instead')
        resources = _dict(c.get("resources"))
        for res in BYTE_RESOURCES:
            for part in ("limits", "requests"):
                value = _dict(resources.get(part)).get(res)
                shown = fractional(value) if value is not None else None
                if shown is not None:
                    out.append(f'{path}.resources.{part}[{res}]: fractional byte value "{shown}" is invalid, '
                               "must be an integer")
        out.extend(_env_warnings(c, path))
    out.extend(_port_warnings(spec, prefix))
    return out


def _env_warnings(c: Obj, path: str) -> Iterator[str]:
    """An env entry named again is fine only if it builds on the earlier one (``$(X)``)."""
    seen: set[str] = set()
    for i, env in enumerate(_list(c.get("env"))):
        if not isinstance(env, dict):
            continue
        name = str(env.get("name") or "")
        if name not in seen:
            seen.add(name)
            continue
        ref = f"$({name})"
        value = str(env.get("value") or "")
        if env.get("valueFrom") is not None or value == ref or ref not in value:
            yield f'{path}.env[{i}]: hides previous definition of "{name}", which may be dropped when using apply'


def _protocol(port: Obj) -> str:
    """Warnings are worked out before defaults are applied: TCP is what an unset one becomes."""
    return str(port.get("protocol") or "TCP")


def _go_port(port: Obj) -> str:
    """A ContainerPort as Go's ``%+v`` prints it (upstream puts it in a message)."""
    return (f"{{Name:{port.get('name') or ''} HostPort:{port.get('hostPort') or 0} "
            f"ContainerPort:{port.get('containerPort') or 0} Protocol:{_protocol(port)} "
            f"HostIP:{port.get('hostIP') or ''}}}")


def _port_warnings(spec: Obj, prefix: str) -> Iterator[str]:
    seen: dict[str, list[tuple[str, Obj]]] = {}
    for c, path in containers(spec, prefix):
        for i, port in enumerate(_list(c.get("ports"))):
            if not isinstance(port, dict):
                continue
            here = f"{path}.ports[{i}]"
            host_ip, host_port = port.get("hostIP") or "", port.get("hostPort") or 0
            if host_ip and not host_port:
                yield f"{here}: hostIP set without hostPort: {_go_port(port)}"
            key = f"{port.get('containerPort') or 0}/{_protocol(port)}"
            for other_path, other in seen.get(key, []):
                other_ip, other_port = other.get("hostIP") or "", other.get("hostPort") or 0
                if host_ip == other_ip and host_port == other_port:
                    yield f"{here}: duplicate port definition with {other_path}"
                elif not host_port or not other_port:
                    yield f"{here}: overlapping port definition with {other_path}"
                elif host_port == other_port and bool(host_ip) != bool(other_ip):
                    yield f"{here}: dangerously ambiguous port definition with {other_path}"
            seen.setdefault(key, []).append((here, port))
