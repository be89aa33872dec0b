"""Compose's merge of several files (``-c base.yml -c override.yml``): later files win.

Mappings merge key by key; ``command``, ``entrypoint`` and ``healthcheck.test`` are replaced
whole; mappings written as lists (environment, labels ...) merge as mappings; ports, volumes,
secrets and configs merge by what identifies them (a later mount on the same target wins).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bosun.compose import normalize

JSON = dict[str, Any]

_REPLACED = frozenset({"command", "entrypoint", "test", "dns", "dns_search", "tmpfs", "cap_add", "cap_drop",
                       "profiles"})
_AS_MAPPING = frozenset({"environment", "labels", "annotations", "sysctls", "extra_hosts", "args"})


def _keyed(key: Callable[[JSON], Any]) -> Callable[[list[Any], list[Any]], list[Any]]:
    def merge(base: list[Any], over: list[Any]) -> list[Any]:
        out: dict[Any, Any] = {}
        for item in [*base, *over]:
            out[key(item)] = item
        return list(out.values())

    return merge


_SERVICE_LISTS: dict[str, Callable[[list[Any], list[Any]], list[Any]]] = {
    "volumes": _keyed(lambda v: v.get("target")),
    "secrets": _keyed(lambda v: v.get("target") or v.get("source")),
    "configs": _keyed(lambda v: v.get("target") or v.get("source")),
    "ports": _keyed(lambda v: (v.get("host_ip"), v.get("published"), v.get("target"), v.get("protocol"))),
}


def _prepare_service(svc: JSON, where: str) -> JSON:
    """The long form of the fields whose merge depends on identity."""
    out = dict(svc)
    if "volumes" in out:
        out["volumes"] = normalize.volumes(out["volumes"], where)
    for name in ("secrets", "configs"):
        if name in out:
            out[name] = normalize.file_refs(out[name])
    if "ports" in out:
        out["ports"] = normalize.ports(out["ports"], where)
    if "depends_on" in out:
        out["depends_on"] = normalize.depends_on(out["depends_on"])
    if "networks" in out:
        out["networks"] = normalize.networks(out["networks"])
    return out


def _merge(base: Any, over: Any, key: str = "") -> Any:
    if key in _REPLACED:
        return over
    if key in _AS_MAPPING and (isinstance(base, list) or isinstance(over, list)):
        base, over = normalize.list_or_dict(base), normalize.list_or_dict(over)
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v, str(k)) if k in base else v
        return out
    if isinstance(base, list) and isinstance(over, list):
        return base + [v for v in over if v not in base]
    return over


def merge_services(base: JSON, over: JSON) -> JSON:
    out = dict(base)
    for k, v in over.items():
        if k in _SERVICE_LISTS and k in base:
            out[k] = _SERVICE_LISTS[k](base[k], v)
        elif k in base:
            out[k] = _merge(base[k], v, k)
        else:
            out[k] = v
    return out


def prepare(model: JSON) -> JSON:
    """Every service of one file in long form (before merging, and for a single file too)."""
    services = {name: _prepare_service(dict(svc or {}), f"services.{name}")
                for name, svc in (model.get("services") or {}).items()}
    return dict(model, services=services)


def merge_models(models: list[JSON]) -> JSON:
    """The files' models, already prepared, merged in order."""
    out: JSON = {}
    for model in models:
        for key, value in model.items():
            if key == "services":
                services = dict(out.get("services") or {})
                for name, svc in (value or {}).items():
                    services[name] = merge_services(services[name], svc) if name in services else svc
                out["services"] = services
            elif key in out:
                out[key] = _merge(out[key], value, key)
            else:
                out[key] = value
    return out
