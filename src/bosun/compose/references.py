"""Checks the schema cannot make: names a service uses that the file never declares, and
dependency cycles. Messages are Compose's (``service "web" refers to undefined volume data``)."""

from __future__ import annotations

from typing import Any

from bosun.compose.errors import ComposeError

JSON = dict[str, Any]


def _invalid(message: str) -> ComposeError:
    return ComposeError(f"{message}: invalid compose project")


def check(model: JSON) -> None:
    services: dict[str, JSON] = model.get("services") or {}
    declared = {kind: set(model.get(kind) or {}) for kind in ("volumes", "networks", "secrets", "configs")}
    for name, svc in services.items():
        for mount in svc.get("volumes") or []:
            src = mount.get("source")
            if mount.get("type") == "volume" and src and src not in declared["volumes"]:
                raise _invalid(f'service "{name}" refers to undefined volume {src}')
        for net in svc.get("networks") or {}:
            if net != "default" and net not in declared["networks"]:
                raise _invalid(f'service "{name}" refers to undefined network {net}')
        for kind in ("secrets", "configs"):
            for ref in svc.get(kind) or []:
                if ref["source"] not in declared[kind]:
                    raise _invalid(f'service "{name}" refers to undefined {kind[:-1]} {ref["source"]}')
        for dep, spec in (svc.get("depends_on") or {}).items():
            if dep not in services and spec.get("required", True):
                raise _invalid(f'service "{name}" depends on undefined service "{dep}"')
    _acyclic(services)


def _acyclic(services: dict[str, JSON]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name):], name]
            raise ComposeError(f"dependency cycle detected: {' -> '.join(cycle)}")
        state[name] = 1
        for dep in (services.get(name) or {}).get("depends_on") or {}:
            if dep in services:
                visit(dep, [*path, name])
        state[name] = 2

    for name in services:
        visit(name, [])


def order(services: dict[str, JSON]) -> list[str]:
    """Service names, each after everything it depends on (the file's order otherwise)."""
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        for dep in (services.get(name) or {}).get("depends_on") or {}:
            if dep in services:
                visit(dep)
        done.append(name)

    for name in services:
        visit(name)
    return done
