"""Kubernetes' LimitRanger admission: a namespace's LimitRanges give new pods' containers their
default requests and limits, and refuse pods and claims outside their bounds.

Two plugins, one per phase, as upstream's one plugin acts in both: :class:`LimitRangerDefaults`
(mutating) fills what containers leave unset and says so in the
``kubernetes.io/limit-ranger`` annotation; :class:`LimitRanger` (validating) checks ``min``,
``max`` and ``maxLimitRequestRatio`` per Container, per Pod (the sums) and per
PersistentVolumeClaim, and refuses with all the violations at once. Pods are checked on
create only: their containers' resources do not change afterwards. The LimitRanges come
from the watch cache, so a write pays no store read for them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bosun.api import errors
from bosun.api.admission.base import CREATE, Obj, Operation, Request
from bosun.api.admission.resourcequota import CachedLists
from bosun.api.quantity import parse_quantity
from bosun.api.quotausage import pod_totals, show
from bosun.api.registry import Resource, must_by_plural

PODS = must_by_plural("", "v1", "pods")
CLAIMS = must_by_plural("", "v1", "persistentvolumeclaims")
LIMIT_RANGES = must_by_plural("", "v1", "limitranges")
ANNOTATION = "kubernetes.io/limit-ranger"


def _items(cache: CachedLists, ns: str | None, kind: str) -> list[Obj]:
    return [item for lr in cache.list(LIMIT_RANGES, ns)
            for item in ((lr.get("spec") or {}).get("limits") or [])
            if isinstance(item, dict) and item.get("type") == kind]


def _strings(raw: Any) -> dict[str, Any]:
    return dict(raw) if isinstance(raw, dict) else {}


def _containers(pod: Obj) -> list[tuple[str, Obj]]:
    spec = pod.get("spec") or {}
    return ([("init container", c) for c in spec.get("initContainers") or [] if isinstance(c, dict)]
            + [("container", c) for c in spec.get("containers") or [] if isinstance(c, dict)])


def _merge(container: Obj, limits: dict[str, Any], requests: dict[str, Any], prefix: str) -> list[str]:
    """Fill the container's unset limits and requests; what was set, in upstream's words."""
    res = container.get("resources")
    if not isinstance(res, dict):
        res = container["resources"] = {}
    said = []
    for field, defaults, word in (("requests", requests, "request"), ("limits", limits, "limit")):
        have = res.get(field) if isinstance(res.get(field), dict) else None
        added = sorted(k for k in defaults if have is None or k not in have)
        if added:
            res[field] = dict(have or {}, **{k: defaults[k] for k in added})
            said.append(f"{', '.join(added)} {word} for {prefix} {container.get('name', '')}")
    return said


class LimitRangerDefaults:
    """Defaults from every ``type: Container`` item of the namespace's LimitRanges."""

    name = "LimitRanger"
    mutating = True

    def __init__(self, cache: CachedLists) -> None:
        self.cache = cache

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == PODS and operation == CREATE and subresource is None

    async def admit(self, req: Request) -> None:
        items = _items(self.cache, req.namespace, "Container")
        if not items:
            return
        limits: dict[str, Any] = {}
        requests: dict[str, Any] = {}
        for item in items:  # the first LimitRange naming a resource wins, as upstream
            for k, v in _strings(item.get("default")).items():
                limits.setdefault(k, v)
            for k, v in _strings(item.get("defaultRequest")).items():
                requests.setdefault(k, v)
        said: list[str] = []
        for prefix, container in _containers(req.obj):
            said += _merge(container, limits, requests, prefix)
        if said:
            m = req.obj.setdefault("metadata", {})
            m["annotations"] = dict(m.get("annotations") or {}, **{ANNOTATION: "LimitRanger plugin set: "
                                                                   + "; ".join(said)})


def _q(values: dict[str, Any], name: str) -> Decimal | None:
    try:
        return parse_quantity(values[name]) if name in values else None
    except ValueError:
        return None


def _bounds(item: Obj, kind: str, requests: dict[str, Any], limits: dict[str, Any], *,
            requests_only: bool = False) -> list[str]:
    """Upstream's minConstraint, maxConstraint and limitRequestRatioConstraint."""
    out = []
    for k, enforced in sorted(_strings(item.get("min")).items()):
        bound, req, lim = parse_quantity(enforced), _q(requests, k), _q(limits, k)
        if req is None:
            out.append(f"minimum {k} usage per {kind} is {enforced}.  No request is specified")
        elif req < bound:
            out.append(f"minimum {k} usage per {kind} is {enforced}, but request is {requests[k]}")
        elif lim is not None and lim < bound:
            out.append(f"minimum {k} usage per {kind} is {enforced}, but limit is {limits[k]}")
    for k, enforced in sorted(_strings(item.get("max")).items()):
        bound, req, lim = parse_quantity(enforced), _q(requests, k), _q(limits, k)
        if requests_only:
            if req is None:
                out.append(f"maximum {k} usage per {kind} is {enforced}.  No request is specified")
            elif req > bound:
                out.append(f"maximum {k} usage per {kind} is {enforced}, but request is {requests[k]}")
        elif lim is None:
            out.append(f"maximum {k} usage per {kind} is {enforced}.  No limit is specified")
        elif lim > bound:
            out.append(f"maximum {k} usage per {kind} is {enforced}, but limit is {limits[k]}")
        elif req is not None and req > bound:
            out.append(f"maximum {k} usage per {kind} is {enforced}, but request is {requests[k]}")
    for k, enforced in sorted(_strings(item.get("maxLimitRequestRatio")).items()):
        ratio, req, lim = parse_quantity(enforced), _q(requests, k), _q(limits, k)
        head = f"{k} max limit to request ratio per {kind} is {enforced}"
        if not req:
            out.append(f"{head}, but no request is specified or request is 0")
        elif not lim:
            out.append(f"{head}, but no limit is specified or limit is 0")
        elif lim / req > ratio:
            out.append(f"{head}, but provided ratio is {float(lim / req):f}")
    return out


class LimitRanger:
    """The bounds of every LimitRange item of the object's namespace."""

    name = "LimitRanger"
    mutating = False

    def __init__(self, cache: CachedLists) -> None:
        self.cache = cache

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res in (PODS, CLAIMS) and operation == CREATE and subresource is None

    async def admit(self, req: Request) -> None:
        problems: list[str] = []
        if req.res == CLAIMS:
            spec = req.obj.get("spec") or {}
            requests = _strings((spec.get("resources") or {}).get("requests"))
            for item in _items(self.cache, req.namespace, "PersistentVolumeClaim"):
                problems += _bounds(item, "PersistentVolumeClaim", requests, {}, requests_only=True)
        else:
            for item in _items(self.cache, req.namespace, "Container"):
                for _, c in _containers(req.obj):
                    res = c.get("resources") or {}
                    problems += _bounds(item, "Container", _strings(res.get("requests")),
                                        _strings(res.get("limits")))
            pod_items = _items(self.cache, req.namespace, "Pod")
            if pod_items:
                requests, limits = pod_totals(req.obj)
                for item in pod_items:
                    problems += _bounds(item, "Pod", _pod_text(requests), _pod_text(limits))
        if problems:
            message = problems[0] if len(problems) == 1 else f"[{', '.join(problems)}]"
            raise errors.forbidden_request(f'{req.res.group_plural} "{req.name}" is forbidden: {message}')


def _pod_text(values: dict[str, Decimal]) -> dict[str, Any]:
    """A pod's sums as text (memory in ``Gi``, not ``1073741824``)."""
    return {k: show(k, v) for k, v in values.items()}
