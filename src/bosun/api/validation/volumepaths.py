"""Upstream's overlapping-path warnings (``warningsForOverlappingVirtualPaths``): files of one
ConfigMap, Secret, downward API or projected volume that would overwrite each other, or one
of which would have to be a directory holding the other (``is directory`` / ``file exists``
at mount time)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _dict(v: object) -> Obj:
    return v if isinstance(v, dict) else {}


def _paths(items: object) -> list[str]:
    return [str(_dict(i).get("path") or "") for i in items] if isinstance(items, list) else []


def _collision(seen: list[str], path: str) -> str:
    for item in seen:
        if item == "" or path == "":
            return ""
        if item == path or (item + "/").startswith(path) or (path + "/").startswith(item):
            return item
    return ""


def _overlaps(paths: list[str], message: str) -> list[str]:
    out: list[str] = []
    seen: list[str] = []
    for path in paths:
        normal = path.rstrip("/")
        hit = _collision(seen, normal)
        if hit:
            out.append(f'{message}: "{normal}" with "{hit}"')
        if normal not in seen:
            seen.append(normal)
    return out


def _source_paths(name: str, source: Obj) -> tuple[list[str], str] | None:
    """A projected source's file paths and how its warning names it (None: no paths)."""
    config, secret, downward = (_dict(source.get(k)) for k in ("configMap", "secret", "downwardAPI"))
    if config.get("items") is not None:
        return _paths(config["items"]), f'Projected ConfigMap "{config.get("name", "")}"'
    if secret.get("items") is not None:
        return _paths(secret["items"]), f'Projected Secret "{secret.get("name", "")}"'
    if downward.get("items") is not None:
        return _paths(downward["items"]), "Projected DownwardAPI"
    if source.get("serviceAccountToken") is not None:
        return [str(_dict(source["serviceAccountToken"]).get("path") or "")], "Projected ServiceAccountToken"
    if source.get("clusterTrustBundle") is not None:
        bundle = _dict(source["clusterTrustBundle"])
        label = bundle.get("name") or bundle.get("signerName") or ""
        return [str(bundle.get("path") or "")], f'Projected ClusterTrustBundle "{label}"'
    return None


def _projected(name: str, sources: list[Any]) -> list[str]:
    out: list[str] = []
    every: set[str] = set()
    for raw in sources:
        source = _dict(raw)
        if not any(v is not None for v in source.values()):
            out.append(f'volume "{name}" (Projected) has no sources provided')
            continue
        found = _source_paths(name, source)
        if found is None or not found[0]:
            continue
        paths, label = found
        message = f'volume "{name}" ({label}): overlapping paths'
        out += _overlaps(paths, message)
        unique = set(paths)
        out += _overlaps(sorted(unique | every), message)
        every |= unique
    return out


def overlapping_paths(volumes: list[Any]) -> list[str]:
    out: list[str] = []
    for volume in volumes:
        volume = _dict(volume)
        name = str(volume.get("name") or "")
        config, secret, downward = (_dict(volume.get(k)) for k in ("configMap", "secret", "downwardAPI"))
        if config.get("items") is not None:
            out += _overlaps(_paths(config["items"]),
                             f'volume "{name}" (ConfigMap "{config.get("name", "")}"): overlapping paths')
        if secret.get("items") is not None:
            out += _overlaps(_paths(secret["items"]),
                             f'volume "{name}" (Secret "{secret.get("secretName", "")}"): overlapping paths')
        if downward.get("items") is not None:
            out += _overlaps(_paths(downward["items"]), f'volume "{name}" (DownwardAPI): overlapping paths')
        projected = volume.get("projected")
        if isinstance(projected, dict):
            sources = projected.get("sources")
            out += _projected(name, sources if isinstance(sources, list) else [])
    return out
