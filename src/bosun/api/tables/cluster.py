"""Rows of services, networking, configuration, storage, nodes and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bosun.api.tables.format import (
    Cells,
    Obj,
    age,
    dig,
    format_labels,
    format_selector,
    lb_ingress,
    name_of,
    or_none,
    since,
    to_int,
)


def _service_external(spec: Obj, status: Obj) -> str:
    kind = spec.get("type") or "ClusterIP"
    ext = list(spec.get("externalIPs") or [])
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(ext) if ext else "<none>"
    if kind == "LoadBalancer":
        lb = lb_ingress(status)
        if ext or lb:
            return ",".join(lb + ext)
        return "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName") or "")
    return "<unknown>"


def _ports(ports: Any) -> str:
    out = []
    for p in ports or []:
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            out.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            out.append(f"{p.get('port')}/{proto}")
    return ",".join(out) if out else "<none>"


def service_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [
        name_of(o),
        spec.get("type") or "ClusterIP",
        ips[0] if ips else "<none>",
        _service_external(spec, st),
        _ports(spec.get("ports")),
        age(o, now),
        format_labels(spec.get("selector")),
    ]


def _endpoints_text(subsets: Any) -> str:
    shown: list[str] = []
    count, more, limit = 0, False, 3
    for ss in subsets or []:
        addrs = ss.get("addresses") or []
        ports = ss.get("ports") or []
        pairs = (
            [(a.get("ip", ""), None) for a in addrs]
            if not ports
            else [(a.get("ip", ""), p.get("port")) for p in ports for a in addrs]
        )
        count += len(pairs)
        for ip, port in pairs:
            if len(shown) == limit:
                more = True
                break
            shown.append(ip if port is None else (f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"))
    text = ",".join(shown)
    if more:
        return f"{text} + {count - limit} more..."
    return text or "<none>"


def endpoints_row(o: Obj, now: datetime) -> Cells:
    return [name_of(o), _endpoints_text(o.get("subsets")), age(o, now)]


def ingress_row(o: Obj, now: datetime) -> Cells:
    spec = o.get("spec") or {}
    hosts = [r["host"] for r in spec.get("rules") or [] if r.get("host")]
    host_text = "*"
    if hosts:
        host_text = ",".join(hosts[:3]) + (f" + {len(hosts) - 3} more..." if len(hosts) > 3 else "")
    ports = "80, 443" if spec.get("tls") else "80"
    return [
        name_of(o),
        or_none(spec.get("ingressClassName")),
        host_text,
        ",".join(lb_ingress(o.get("status") or {})),
        ports,
        age(o, now),
    ]


def ingressclass_row(o: Obj, now: datetime) -> Cells:
    spec = o.get("spec") or {}
    params = spec.get("parameters") or {}
    shown = "<none>"
    if params:
        group = params.get("apiGroup") or ""
        shown = f"{params.get('kind', '')}.{group}/{params.get('name', '')}" if group else \
            f"{params.get('kind', '')}/{params.get('name', '')}"
    return [name_of(o), spec.get("controller") or "", shown, age(o, now)]


POD_SELECTOR_DESC = (
    "podSelector selects the pods to which this NetworkPolicy object applies. The array of rules is "
    "applied to any pods selected by this field. An empty selector matches all pods in this namespace."
)


def networkpolicy_row(o: Obj, now: datetime) -> Cells:
    return [name_of(o), format_selector((o.get("spec") or {}).get("podSelector")), age(o, now)]


def pdb_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [
        name_of(o),
        "N/A" if spec.get("minAvailable") is None else str(spec["minAvailable"]),
        "N/A" if spec.get("maxUnavailable") is None else str(spec["maxUnavailable"]),
        to_int(st.get("disruptionsAllowed")),
        age(o, now),
    ]


# ---- config and cluster objects ---------------------------------------------------------------


def configmap_row(o: Obj, now: datetime) -> Cells:
    return [name_of(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}), age(o, now)]


def secret_row(o: Obj, now: datetime) -> Cells:
    return [
        name_of(o),
        o.get("type") or "Opaque",
        len(o.get("data") or {}) + len(o.get("stringData") or {}),
        age(o, now),
    ]


def namespace_row(o: Obj, now: datetime) -> Cells:
    return [name_of(o), dig(o, "status", "phase") or "Active", age(o, now)]


def serviceaccount_row(o: Obj, now: datetime) -> Cells:
    return [name_of(o), len(o.get("secrets") or []), age(o, now)]


def crd_row(o: Obj, now: datetime) -> Cells:
    return [name_of(o), dig(o, "metadata", "creationTimestamp") or ""]


def apiservice_row(o: Obj, now: datetime) -> Cells:
    """SERVICE is ``namespace/name`` or ``Local``; AVAILABLE ``True`` or ``False (Reason)``."""
    svc = dig(o, "spec", "service")
    where = f"{svc.get('namespace')}/{svc.get('name')}" if isinstance(svc, dict) else "Local"
    available = "Unknown"
    for c in dig(o, "status", "conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Available":
            available = str(c.get("status"))
            if available != "True":
                available += f" ({c.get('reason')})"
    return [name_of(o), where, available, age(o, now)]


def webhooks_row(o: Obj, now: datetime) -> Cells:
    hooks = o.get("webhooks")
    return [name_of(o), len(hooks) if isinstance(hooks, list) else 0, age(o, now)]


def lease_row(o: Obj, now: datetime) -> Cells:
    return [name_of(o), dig(o, "spec", "holderIdentity") or "", age(o, now)]


def priorityclass_row(o: Obj, now: datetime) -> Cells:
    return [
        name_of(o),
        to_int(o.get("value")),
        bool(o.get("globalDefault")),
        o.get("preemptionPolicy") or "PreemptLowerPriority",
        age(o, now),
    ]


def storageclass_row(o: Obj, now: datetime) -> Cells:
    ann = dig(o, "metadata", "annotations") or {}
    default = "true" in (ann.get("storageclass.kubernetes.io/is-default-class"),
                         ann.get("storageclass.beta.kubernetes.io/is-default-class"))
    return [
        name_of(o) + (" (default)" if default else ""),
        o.get("provisioner") or "",
        o.get("reclaimPolicy") or "Delete",
        o.get("volumeBindingMode") or "Immediate",
        bool(o.get("allowVolumeExpansion")),
        age(o, now),
    ]


def _node_roles(labels: Obj) -> str:
    roles = set()
    for k, v in labels.items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k[len("node-role.kubernetes.io/") :]
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return ",".join(sorted(roles)) or "<none>"


def node_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    state: list[str] = []
    ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is not None:
        state.append("Ready" if ready.get("status") == "True" else "NotReady")
    else:
        state.append("Unknown")
    if spec.get("unschedulable"):
        state.append("SchedulingDisabled")
    addrs = st.get("addresses") or []

    def addr(kind: str) -> str:
        return next((a.get("address", "") for a in addrs if a.get("type") == kind), "<none>")

    info = st.get("nodeInfo") or {}
    return [
        name_of(o),
        ",".join(state),
        _node_roles(dig(o, "metadata", "labels") or {}),
        age(o, now),
        info.get("kubeletVersion", ""),
        addr("InternalIP"),
        addr("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _event_source(o: Obj) -> str:
    src = o.get("source") or {}
    comp, host = src.get("component") or "", src.get("host") or ""
    if not comp:
        comp, host = o.get("reportingComponent") or "", o.get("reportingInstance") or ""
    return f"{comp}, {host}" if host else comp


def event_row(o: Obj, now: datetime) -> Cells:
    first = since(o["firstTimestamp"], now) if o.get("firstTimestamp") else since(o.get("eventTime"), now)
    last = since(o["lastTimestamp"], now) if o.get("lastTimestamp") else first
    count = to_int(o.get("count"))
    series = o.get("series")
    if series:
        last = since(series.get("lastObservedTime"), now)
        count = to_int(series.get("count"))
    elif count == 0:
        count = 1
    inv = o.get("involvedObject") or {}
    kind = str(inv.get("kind", "")).lower()
    target = f"{kind}/{inv['name']}" if inv.get("name") else kind
    return [
        last,
        o.get("type", ""),
        o.get("reason", ""),
        target,
        inv.get("fieldPath", ""),
        _event_source(o),
        str(o.get("message", "")).strip(),
        first,
        count,
        name_of(o),
    ]


_ACCESS = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def _access_modes(modes: Any) -> str:
    seen = [_ACCESS[m] for m in _ACCESS if m in (modes or [])]
    return ",".join(seen)


def _storage_class(o: Obj) -> str:
    beta = dig(o, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class")
    return str(beta or dig(o, "spec", "storageClassName") or "")


def pvc_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    phase = "Terminating" if dig(o, "metadata", "deletionTimestamp") else st.get("phase") or "Pending"
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = _access_modes(st.get("accessModes"))
        capacity = str(dig(st, "capacity", "storage") or "")
    return [
        name_of(o),
        phase,
        spec.get("volumeName") or "",
        capacity,
        modes,
        _storage_class(o),
        spec.get("volumeAttributesClassName") or "<unset>",
        age(o, now),
        spec.get("volumeMode") or "<unset>",
    ]


def pv_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
    phase = "Terminating" if dig(o, "metadata", "deletionTimestamp") else st.get("phase") or "Pending"
    return [
        name_of(o),
        str(dig(spec, "capacity", "storage") or ""),
        _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy") or "Retain",
        phase,
        claim,
        _storage_class(o),
        spec.get("volumeAttributesClassName") or "<unset>",
        st.get("reason") or "",
        age(o, now),
        spec.get("volumeMode") or "<unset>",
    ]


def _hpa_current(current: list[Obj], field: str, name: str) -> Obj:
    """The status entry of the metric of source ``field`` (resource, pods, object, ...) and
    ``name`` (its resource name or metric name)."""
    for c in current:
        src = c.get(field) or {}
        if (src.get("name") or (src.get("metric") or {}).get("name")) == name:
            return dict(src.get("current") or {})
    return {}


def _hpa_target(m: Obj, current: list[Obj]) -> str:
    """One metric as kubectl prints it: ``cpu: 23%/50%``, ``30/10`` (Pods), ``5/10 (avg)``."""
    mtype = str(m.get("type", ""))
    field = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
             "Object": "object", "External": "external"}.get(mtype, "")
    src = m.get(field) or {}
    if not field or not src:
        return f"<{mtype or 'unknown'}>"
    target = src.get("target") or {}
    name = src.get("name") or (src.get("metric") or {}).get("name") or ""
    cur = _hpa_current(current, field, name)
    if field in ("resource", "containerResource"):
        if target.get("averageUtilization") is not None:
            util = cur.get("averageUtilization")
            return f"{name}: {f'{util}%' if util is not None else '<unknown>'}/{target['averageUtilization']}%"
        return f"{name}: {cur.get('averageValue') or '<unknown>'}/{target.get('averageValue') or ''}"
    if field == "pods":
        return f"{cur.get('averageValue') or '<unknown>'}/{target.get('averageValue') or ''}"
    if target.get("averageValue") is not None:
        return f"{cur.get('averageValue') or '<unknown>'}/{target['averageValue']} (avg)"
    return f"{cur.get('value') or '<unknown>'}/{target.get('value') or ''}"


def _hpa_targets(o: Obj) -> str:
    metrics = dig(o, "spec", "metrics") or []
    current = dig(o, "status", "currentMetrics") or []
    if not metrics:
        return "<none>"
    shown = ", ".join(_hpa_target(m, current) for m in metrics[:2])
    return shown + (f" + {len(metrics) - 2} more..." if len(metrics) > 2 else "")


def hpa_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_pods = str(spec["minReplicas"]) if spec.get("minReplicas") is not None else "<unset>"
    return [
        name_of(o),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _hpa_targets(o),
        min_pods,
        to_int(spec.get("maxReplicas")),
        to_int(st.get("currentReplicas")),
        age(o, now),
    ]


def default_row(o: Obj, now: datetime) -> Cells:
    return [name_of(o), age(o, now)]
