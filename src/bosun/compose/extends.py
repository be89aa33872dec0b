"""``extends``: a service built on another one (in the same file or another), merged as
Compose merges them (the base first, the extending service over it); cycles are refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bosun.compose import merge
from bosun.compose.errors import ComposeError

JSON = dict[str, Any]
LoadFile = Callable[[Path], JSON]  # a prepared model of another file


def _target(svc: JSON, here: Path) -> tuple[Path, str]:
    ext = svc["extends"]
    if isinstance(ext, str):
        return here, ext
    return (Path(ext["file"]) if ext.get("file") else here), str(ext["service"])


def resolve(model: JSON, here: Path, load_file: LoadFile) -> JSON:
    """``model`` (of file ``here``) with every ``extends`` replaced by the merged service."""
    cache: dict[Path, JSON] = {here: model}

    def model_of(path: Path) -> JSON:
        if path not in cache:
            cache[path] = load_file(path)
        return cache[path]

    def build(path: Path, name: str, seen: tuple[tuple[Path, str], ...]) -> JSON:
        if (path, name) in seen:
            chain = " -> ".join(n for _, n in (*seen, (path, name)))
            raise ComposeError(f"circular reference with extends: {chain}")
        services = model_of(path).get("services") or {}
        if name not in services:
            where = "" if path == here else f" in {path}"
            raise ComposeError(f'cannot extend service "{seen[-1][1] if seen else name}": service "{name}" '
                               f"not found{where}")
        svc = dict(services[name])
        if "extends" not in svc:
            return svc
        base_path, base_name = _target(svc, path)
        base = build(base_path, base_name, (*seen, (path, name)))
        svc.pop("extends")
        return merge.merge_services(base, svc)

    services = {name: build(here, name, ()) for name in (model.get("services") or {})}
    return dict(model, services=services)
