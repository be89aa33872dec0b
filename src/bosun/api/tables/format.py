"""Cell formatting shared by every printer: durations, ages, label and selector text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bosun.api.durations import human_duration as human_duration
from bosun.api.selectors import SelectorError, label_selector_from_dict

Obj = dict[str, Any]
Cells = list[Any]


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 timestamps as Kubernetes writes them (``2024-05-01T10:00:00Z``, micro too)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def since(value: Any, now: datetime) -> str:
    t = parse_time(value)
    if t is None:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


def dig(obj: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def age(obj: Obj, now: datetime) -> str:
    return since(dig(obj, "metadata", "creationTimestamp"), now)


def or_none(s: Any) -> str:
    return str(s) if s not in (None, "") else "<none>"


def format_labels(m: Any) -> str:
    """labels.FormatLabels: sorted ``k=v`` joined by commas, ``<none>`` when empty."""
    if not m:
        return "<none>"
    return ",".join(f"{k}={m[k]}" for k in sorted(m))


def format_selector(sel: Any) -> str:
    try:
        s = str(label_selector_from_dict(sel)) if sel else ""
    except SelectorError:
        return "<error>"
    return s or "<none>"


def pod_spec_columns(template_spec: Any) -> Cells:
    containers = (template_spec or {}).get("containers") or []
    return [",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)]


def col(name: str, type_: str = "string", priority: int = 0, fmt: str = "", desc: str = "") -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": desc or name, "priority": priority}


NAME = col("Name", fmt="name", desc="Name must be unique within a namespace.")
AGE = col(
    "Age", desc="CreationTimestamp is a timestamp representing the server time when this object was created."
)
CONTAINERS = col("Containers", priority=1, desc="Names of each container in the template.")
IMAGES = col("Images", priority=1, desc="Images referenced by each container in the template.")
SELECTOR = col("Selector", priority=1, desc="A label query over the objects the controller manages.")


def name_of(o: Obj) -> str:
    return str(dig(o, "metadata", "name") or "")


def to_int(v: Any) -> int:
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


def bool_text(v: Any) -> str:
    return "<unset>" if v is None else ("True" if v else "False")


def lb_ingress(status: Any) -> list[str]:
    out: list[str] = []
    for ing in dig(status, "loadBalancer", "ingress") or []:
        if ing.get("ip"):
            out.append(ing["ip"])
        elif ing.get("hostname"):
            out.append(ing["hostname"])
    return out
