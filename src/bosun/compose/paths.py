"""Relative paths made absolute against the file that wrote them, before files merge, so a
bind mount or env_file in an extended or included file keeps pointing where its author meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

JSON = dict[str, Any]


def _abs(directory: Path, value: Any) -> str:
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else (directory / p).resolve())


def _env_files(directory: Path, value: Any) -> Any:
    items = [value] if isinstance(value, str) else list(value or [])
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            out.append(dict(item, path=_abs(directory, item["path"])))
        else:
            out.append(_abs(directory, item))
    return out


def absolutize(model: JSON, directory: Path) -> JSON:
    """``model`` (already in long form) with every file path absolute."""
    services = {}
    for name, svc in (model.get("services") or {}).items():
        svc = dict(svc)
        if "env_file" in svc:
            svc["env_file"] = _env_files(directory, svc["env_file"])
        if svc.get("volumes"):
            svc["volumes"] = [dict(m, source=_abs(directory, m["source"]))
                              if m.get("type") == "bind" and m.get("source") else m for m in svc["volumes"]]
        ext = svc.get("extends")
        if isinstance(ext, dict) and ext.get("file"):
            svc["extends"] = dict(ext, file=_abs(directory, ext["file"]))
        services[name] = svc
    out = dict(model, services=services)
    for kind in ("configs", "secrets"):
        if model.get(kind):
            out[kind] = {k: dict(v, file=_abs(directory, v["file"])) if isinstance(v, dict) and v.get("file") else v
                         for k, v in model[kind].items()}
    return out
