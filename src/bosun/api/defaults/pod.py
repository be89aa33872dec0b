"""Pod-spec defaults, the same for Pods and every workload's pod template.

These are the values ``kubectl get -o yaml`` shows on a real cluster for fields a user left
out; controllers and the agent rely on them being present.
"""

from __future__ import annotations

from typing import Any

from bosun.api.quantity import is_quantity
from bosun.api.validation.pod import VOLUME_SOURCES

DEFAULT_MODE = 420  # 0644, as Kubernetes stores it (decimal)


def _set(d: dict[str, Any], key: str, value: Any) -> None:
    if d.get(key) is None:
        d[key] = value


def _dicts(parent: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = parent.get(key)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    v = parent.get(key)
    return v if isinstance(v, dict) else None


def image_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or an untagged image, else ``IfNotPresent`` (digests included)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


def default_handler(h: dict[str, Any]) -> None:
    http = _obj(h, "httpGet")
    if http is not None:
        _set(http, "path", "/")
        _set(http, "scheme", "HTTP")


def default_probe(probe: dict[str, Any]) -> None:
    _set(probe, "timeoutSeconds", 1)
    _set(probe, "periodSeconds", 10)
    _set(probe, "successThreshold", 1)
    _set(probe, "failureThreshold", 3)
    default_handler(probe)
    grpc = _obj(probe, "grpc")
    if grpc is not None:
        _set(grpc, "service", "")


def _field_refs(items: list[dict[str, Any]]) -> None:
    for item in items:
        ref = _obj(item, "fieldRef")
        if ref is not None:
            _set(ref, "apiVersion", "v1")


# Plain values a container gets when it leaves them out (``_set`` for each, unrolled below).
_CONTAINER_PLAIN = (("terminationMessagePath", "/dev/termination-log"), ("terminationMessagePolicy", "File"))


def default_container(ctr: dict[str, Any]) -> None:
    # Every create and every pod template pays for this: dict reads inline, no helper calls
    # for what is absent.
    get = ctr.get
    image = get("image")
    if get("imagePullPolicy") is None and isinstance(image, str) and image:
        ctr["imagePullPolicy"] = image_pull_policy(image)
    for k, v in _CONTAINER_PLAIN:
        if get(k) is None:
            ctr[k] = v
    if get("resources") is None:
        ctr["resources"] = {}
    ports = get("ports")
    if ports.__class__ is list:
        for port in ports:
            if isinstance(port, dict) and port.get("protocol") is None:
                port["protocol"] = "TCP"
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = get(name)
        if isinstance(probe, dict):
            default_probe(probe)
    lifecycle = get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            h = lifecycle.get(hook)
            if isinstance(h, dict):
                default_handler(h)
    env = get("env")
    if env.__class__ is list:
        for item in env:
            if isinstance(item, dict):
                vf = item.get("valueFrom")
                if isinstance(vf, dict):
                    ref = vf.get("fieldRef")
                    if isinstance(ref, dict) and ref.get("apiVersion") is None:
                        ref["apiVersion"] = "v1"


def default_volume(vol: dict[str, Any]) -> None:
    if not any(vol.get(s) is not None for s in VOLUME_SOURCES):
        vol["emptyDir"] = {}
    for src in ("configMap", "secret", "downwardAPI", "projected"):
        s = _obj(vol, src)
        if s is not None:
            _set(s, "defaultMode", DEFAULT_MODE)
    hp = _obj(vol, "hostPath")
    if hp is not None:
        _set(hp, "type", "")
    dapi = _obj(vol, "downwardAPI")
    if dapi is not None:
        _field_refs(_dicts(dapi, "items"))
    proj = _obj(vol, "projected")
    if proj is not None:
        for source in _dicts(proj, "sources"):
            sat = _obj(source, "serviceAccountToken")
            if sat is not None:
                _set(sat, "expirationSeconds", 3600)
            d = _obj(source, "downwardAPI")
            if d is not None:
                _field_refs(_dicts(d, "items"))


def default_pod_spec(spec: dict[str, Any]) -> None:
    """``SetDefaults_PodSpec`` and what it reaches: containers, probes, ports, volumes."""
    _set(spec, "dnsPolicy", "ClusterFirst")
    _set(spec, "restartPolicy", "Always")
    _set(spec, "securityContext", {})
    _set(spec, "terminationGracePeriodSeconds", 30)
    _set(spec, "schedulerName", "default-scheduler")
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for ctr in _dicts(spec, group):
            default_container(ctr)
    for vol in _dicts(spec, "volumes"):
        default_volume(vol)


def default_pod(pod: dict[str, Any]) -> None:
    """What a Pod (not a template) also gets: service links, priority, requests from limits."""
    spec = _obj(pod, "spec")
    if spec is None:
        return
    default_pod_spec(spec)
    _set(spec, "enableServiceLinks", True)
    if spec.get("priorityClassName") in (None, ""):
        _set(spec, "priority", 0)
    _set(spec, "preemptionPolicy", "PreemptLowerPriority")
    for group in ("initContainers", "containers"):
        for ctr in _dicts(spec, group):
            res = _obj(ctr, "resources")
            limits = _obj(res, "limits") if res is not None else None
            if res is None or not limits:
                continue
            requests = res.get("requests")
            if requests is None:
                requests = res["requests"] = {}
            if isinstance(requests, dict):
                for k, v in limits.items():
                    if is_quantity(v):  # a bad limit is reported once, by validation
                        requests.setdefault(k, v)
    if spec.get("hostNetwork") is True:
        for group in ("initContainers", "containers"):
            for ctr in _dicts(spec, group):
                for port in _dicts(ctr, "ports"):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")


def default_template(parent: dict[str, Any], key: str = "template") -> None:
    template = _obj(parent, key)
    if template is None:
        return
    spec = _obj(template, "spec")
    if spec is not None:
        default_pod_spec(spec)
