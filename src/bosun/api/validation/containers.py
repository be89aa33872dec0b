"""Containers: names, images, ports, env, probes, resources and volume mounts.

Shared by pods and by every workload's pod template, so a Deployment is refused for the
same reason its pods would be.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson

from bosun.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from bosun.api.quantity import QUANTITY_ERROR, format_quantity, parse_quantity
from bosun.api.validation.fields import Checker, child, index, key
from bosun.api.validation.meta import check_name, dns1123_label, port_name, qualified_name

PROTOCOLS = ["SCTP", "TCP", "UDP"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
_STANDARD_RESOURCES = {"cpu", "memory", "ephemeral-storage", "storage", "pods"}  # pods: node capacity
_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def validate_port_number(c: Checker, value: Any, path: str) -> None:
    """An int-or-string port: 1-65535, or an IANA port name."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        c.add(FieldError("FieldValueTypeInvalid", path, "must be of type integer or string",
                         str(value), True))
    elif isinstance(value, int):
        if not 1 <= value <= 65535:
            c.add(invalid(path, value, "must be between 1 and 65535, inclusive"))
    else:
        for msg in port_name(value):
            c.add(invalid(path, value, msg))


def validate_resource_name(c: Checker, name: str, path: str) -> None:
    for msg in qualified_name(name):
        c.add(invalid(path, name, msg))
    if "/" not in name and name not in _STANDARD_RESOURCES and not name.startswith("hugepages-"):
        c.add(invalid(path, name, "must be a standard resource type or fully qualified"))


# Requests and limits repeat the same few values ("100m", "128Mi"): parsed once each. typed:
# 1 and 1.0 are different inputs. Failures are not cached (they raise).
_parse_quantity = lru_cache(maxsize=4096, typed=True)(parse_quantity)


def quantity_map(c: Checker, parent: Any, name: str, path: str) -> dict[str, Decimal]:
    """A ``ResourceList``: each value a non-negative quantity."""
    out: dict[str, Decimal] = {}
    m = c.obj(parent, name, path)
    for rname, raw in (m or {}).items():
        p = key(path, rname)
        validate_resource_name(c, rname, p)
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            c.add(invalid(p, raw if raw is None else str(raw), QUANTITY_ERROR))
            continue
        try:
            q = _parse_quantity(raw)
        except ValueError:
            c.add(invalid(p, raw, QUANTITY_ERROR))
            continue
        if q < 0:
            c.add(invalid(p, raw, "must be greater than or equal to 0"))
        out[rname] = q
    return out


def validate_resources(c: Checker, ctr: dict[str, Any], path: str) -> None:
    res = c.obj(ctr, "resources", path)
    if res is None:
        return
    limits = quantity_map(c, res, "limits", f"{path}.limits")
    requests = quantity_map(c, res, "requests", f"{path}.requests")
    for rname, req in requests.items():
        lim = limits.get(rname)
        if lim is not None and req > lim:
            # Kubernetes prints quantities canonically, keeping the binary/decimal family used.
            req_text = format_quantity(req, _binary(res["requests"][rname]))
            lim_text = format_quantity(lim, _binary(res["limits"][rname]))
            c.add(invalid(key(f"{path}.requests", rname), req_text,
                          f"must be less than or equal to {rname} limit of {lim_text}"))


def _binary(raw: Any) -> bool:
    return isinstance(raw, str) and raw.endswith("i")


def validate_probe(c: Checker, probe: dict[str, Any], path: str, *, liveness_like: bool) -> None:
    handlers = [h for h in _HANDLERS if probe.get(h) is not None]
    if not handlers:
        c.add(required(path, "must specify a handler type"))
    for extra in handlers[1:]:
        c.add(forbidden(child(path, extra), "may not specify more than 1 handler type"))
    validate_handler(c, probe, path)
    for f in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
              "failureThreshold"):
        c.non_negative(probe, f, child(path, f))
    st = c.integer(probe, "successThreshold", f"{path}.successThreshold")
    if liveness_like and st is not None and st != 1:
        c.add(invalid(f"{path}.successThreshold", st, "must be 1"))
    tg = c.integer(probe, "terminationGracePeriodSeconds", f"{path}.terminationGracePeriodSeconds")
    if tg is not None and tg <= 0:
        c.add(invalid(f"{path}.terminationGracePeriodSeconds", tg, "must be greater than 0"))


def _required_port(c: Checker, action: dict[str, Any], path: str) -> None:
    """httpGet and tcpSocket name the port they reach; it has no default."""
    if "port" not in action:
        c.add(required(path))
    else:
        validate_port_number(c, action["port"], path)


def validate_handler(c: Checker, h: dict[str, Any], path: str) -> None:
    """exec / httpGet / tcpSocket / grpc, as probes and lifecycle hooks carry them."""
    ex = c.obj(h, "exec", f"{path}.exec")
    if ex is not None and not c.strings(ex, "command", f"{path}.exec.command"):
        c.add(required(f"{path}.exec.command"))
    http = c.obj(h, "httpGet", f"{path}.httpGet")
    if http is not None:
        _required_port(c, http, f"{path}.httpGet.port")
        scheme = c.text(http, "scheme", f"{path}.httpGet.scheme")
        if scheme is not None and scheme not in ("HTTP", "HTTPS"):
            c.add(not_supported(f"{path}.httpGet.scheme", scheme, ["HTTP", "HTTPS"]))
        c.text(http, "path", f"{path}.httpGet.path")
        for i, hdr in c.objects(http, "httpHeaders", f"{path}.httpGet.httpHeaders"):
            if not c.text(hdr, "name", child(path, f"httpGet.httpHeaders[{i}].name")):
                c.add(required(child(path, f"httpGet.httpHeaders[{i}].name")))
    tcp = c.obj(h, "tcpSocket", f"{path}.tcpSocket")
    if tcp is not None:
        _required_port(c, tcp, f"{path}.tcpSocket.port")
    grpc = c.obj(h, "grpc", f"{path}.grpc")
    if grpc is not None:
        c.in_range(grpc, "port", f"{path}.grpc.port", 1, 65535)


def validate_ports(c: Checker, ctr: dict[str, Any], path: str, port_names: set[str]) -> None:
    for i, port in c.objects(ctr, "ports", path):
        p = index(path, i)
        name = c.text(port, "name", f"{p}.name")
        if name:
            for msg in port_name(name):
                c.add(invalid(f"{p}.name", name, msg))
            if name in port_names:
                c.add(duplicate(f"{p}.name", name))
            port_names.add(name)
        cp = c.integer(port, "containerPort", f"{p}.containerPort")
        if cp is None or cp == 0:
            if "containerPort" not in port or cp == 0:
                c.add(required(f"{p}.containerPort"))
        elif not 1 <= cp <= 65535:
            c.add(invalid(f"{p}.containerPort", cp, "must be between 1 and 65535, inclusive"))
        hp = c.integer(port, "hostPort", f"{p}.hostPort")
        if hp and not 1 <= hp <= 65535:
            c.add(invalid(f"{p}.hostPort", hp, "must be between 1 and 65535, inclusive"))
        proto = c.text(port, "protocol", f"{p}.protocol")
        if proto is not None and proto not in PROTOCOLS:
            c.add(not_supported(f"{p}.protocol", proto, PROTOCOLS))


def _env_name_errors(name: str) -> list[str]:
    # ASCII and printable is exactly the range 32-126.
    if name.isascii() and name.isprintable() and "=" not in name:
        return []
    return ["a valid environment variable name must consist only of printable ASCII characters other "
            "than '='"]


def validate_env(c: Checker, ctr: dict[str, Any], path: str) -> None:
    for i, env in c.objects(ctr, "env", path):
        p = index(path, i)
        name = c.text(env, "name", f"{p}.name")
        if not name:
            c.add(required(f"{p}.name"))
        else:
            for msg in _env_name_errors(name):
                c.add(invalid(f"{p}.name", name, msg))
        value = c.text(env, "value", f"{p}.value")
        vf = c.obj(env, "valueFrom", f"{p}.valueFrom")
        if vf is None:
            continue
        if value:
            c.add(invalid(f"{p}.valueFrom", "", "may not be specified when `value` is not empty"))
        sources = [s for s in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
                   if vf.get(s) is not None]
        if not sources:
            c.add(invalid(f"{p}.valueFrom", "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                                     "`configMapKeyRef` or `secretKeyRef`"))
        elif len(sources) > 1:
            c.add(invalid(f"{p}.valueFrom", "", "may not have more than one field specified at a time"))
        for s in ("configMapKeyRef", "secretKeyRef"):
            ref = c.obj(vf, s, child(p, f"valueFrom.{s}"))
            if ref is not None and not c.text(ref, "key", child(p, f"valueFrom.{s}.key")):
                c.add(required(child(p, f"valueFrom.{s}.key")))
        fr = c.obj(vf, "fieldRef", f"{p}.valueFrom.fieldRef")
        if fr is not None and not c.text(fr, "fieldPath", f"{p}.valueFrom.fieldRef.fieldPath"):
            c.add(required(f"{p}.valueFrom.fieldRef.fieldPath"))
        rr = c.obj(vf, "resourceFieldRef", f"{p}.valueFrom.resourceFieldRef")
        if rr is not None and not c.text(rr, "resource", f"{p}.valueFrom.resourceFieldRef.resource"):
            c.add(required(f"{p}.valueFrom.resourceFieldRef.resource"))


def validate_volume_mounts(c: Checker, ctr: dict[str, Any], path: str, volumes: set[str]) -> None:
    paths: set[str] = set()
    for i, vm in c.objects(ctr, "volumeMounts", path):
        p = index(path, i)
        name = c.text(vm, "name", f"{p}.name")
        if not name:
            c.add(required(f"{p}.name"))
        elif name not in volumes:
            c.add(FieldError("FieldValueNotFound", f"{p}.name", "", name, True))
        mount = c.text(vm, "mountPath", f"{p}.mountPath")
        if not mount:
            c.add(required(f"{p}.mountPath"))
        elif mount in paths:
            c.add(invalid(f"{p}.mountPath", mount, "must be unique"))
        else:
            paths.add(mount)
        c.boolean(vm, "readOnly", f"{p}.readOnly")
        c.text(vm, "subPath", f"{p}.subPath")


def validate_security_context(c: Checker, sc: dict[str, Any], path: str) -> None:
    for f in ("runAsUser", "runAsGroup", "fsGroup"):
        c.in_range(sc, f, child(path, f), 0, 2**31 - 1)
    for f in ("privileged", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation"):
        c.boolean(sc, f, child(path, f))
    caps = c.obj(sc, "capabilities", f"{path}.capabilities")
    if caps is not None:
        c.strings(caps, "add", f"{path}.capabilities.add")
        c.strings(caps, "drop", f"{path}.capabilities.drop")
    if sc.get("allowPrivilegeEscalation") is False and sc.get("privileged") is True:
        c.add(invalid(path, "", "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
    for i, g in enumerate(c.lst(sc, "supplementalGroups", f"{path}.supplementalGroups") or []):
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g <= 2**31 - 1:
            c.add(invalid(index(f"{path}.supplementalGroups", i), g,
                          "must be between 0 and 2147483647, inclusive"))
    proc = c.text(sc, "procMount", f"{path}.procMount")
    if proc is not None and proc not in ("Default", "Unmasked"):
        c.add(not_supported(f"{path}.procMount", proc, ["Default", "Unmasked"]))
    _seccomp_profile(c, sc, f"{path}.seccompProfile")
    _sysctls(c, sc, f"{path}.sysctls")


_SECCOMP_TYPES = ["Localhost", "RuntimeDefault", "Unconfined"]
_SYSCTL_SEGMENT = r"[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
_SYSCTL = re.compile(rf"^({_SYSCTL_SEGMENT}[\./])*{_SYSCTL_SEGMENT}$")
_SYSCTL_MAX = 253


def _seccomp_profile(c: Checker, sc: dict[str, Any], path: str) -> None:
    profile = c.obj(sc, "seccompProfile", path)
    if profile is None:
        return
    kind = c.text(profile, "type", f"{path}.type")
    local = c.text(profile, "localhostProfile", f"{path}.localhostProfile")
    if not kind:
        c.add(required(f"{path}.type"))
    elif kind not in _SECCOMP_TYPES:
        c.add(not_supported(f"{path}.type", kind, _SECCOMP_TYPES))
    elif kind == "Localhost" and not local:
        c.add(required(f"{path}.localhostProfile", "must be set when seccomp type is Localhost"))
    elif kind != "Localhost" and local is not None:
        c.add(invalid(f"{path}.localhostProfile", local, "can only be set when seccomp type is Localhost"))
    if kind == "Localhost" and local:
        if local.startswith("/"):
            c.add(invalid(f"{path}.localhostProfile", local, "must be a relative path"))
        elif ".." in local.split("/"):
            c.add(invalid(f"{path}.localhostProfile", local, "must not contain '..'"))


def _sysctls(c: Checker, sc: dict[str, Any], path: str) -> None:
    seen: set[str] = set()
    for i, s in c.objects(sc, "sysctls", path):
        p = index(path, i)
        name = c.text(s, "name", f"{p}.name")
        c.text(s, "value", f"{p}.value")
        if not name:
            c.add(required(f"{p}.name"))
        elif len(name) > _SYSCTL_MAX or not _SYSCTL.match(name):
            c.add(invalid(f"{p}.name", name, f"must have at most {_SYSCTL_MAX} characters and match regex "
                                            f"{_SYSCTL.pattern}"))
        elif name in seen:
            c.add(duplicate(f"{p}.name", name))
        else:
            seen.add(name)


# Containers found valid, keyed by their JSON, kind (init or not) and the pod's volume names,
# with the port names each declares. A Deployment's pods (and a pod's binding and status
# writes after its create) carry the same containers over and over: validating one again is
# a dict lookup instead of some hundred field checks. Only error-free results are kept, so
# every error is still reported with its own path.
_VALID: dict[tuple[bytes, bool, frozenset[str]], tuple[str, ...]] = {}
_VALID_MAX = 4096


def validate_container(c: Checker, ctr: dict[str, Any], path: str, *, volumes: set[str],
                       port_names: set[str], init: bool) -> None:
    try:
        memo_key: tuple[bytes, bool, frozenset[str]] | None = (orjson.dumps(ctr), init, frozenset(volumes))
    except TypeError:  # not JSON (never from a request body): no memo
        memo_key = None
    if memo_key is not None:
        declared = _VALID.get(memo_key)
        # A port name an earlier container took is an error only the full check reports.
        if declared is not None and port_names.isdisjoint(declared):
            port_names.update(declared)
            return
    errors_before = len(c.errors)
    names_before = set(port_names)
    _validate_container(c, ctr, path, volumes=volumes, port_names=port_names, init=init)
    if memo_key is not None and len(c.errors) == errors_before:
        if len(_VALID) >= _VALID_MAX:
            _VALID.clear()
        _VALID[memo_key] = tuple(port_names - names_before)


def _validate_container(c: Checker, ctr: dict[str, Any], path: str, *, volumes: set[str],
                        port_names: set[str], init: bool) -> None:
    name = c.text(ctr, "name", f"{path}.name")
    if not name:
        c.add(required(f"{path}.name"))
    else:
        check_name(c, name, f"{path}.name", dns1123_label)
    image = c.text(ctr, "image", f"{path}.image")
    if not image:
        c.add(required(f"{path}.image"))
    elif image != image.strip():
        c.add(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    policy = c.text(ctr, "imagePullPolicy", f"{path}.imagePullPolicy")
    if policy is not None and policy not in PULL_POLICIES:
        c.add(not_supported(f"{path}.imagePullPolicy", policy, PULL_POLICIES))
    c.strings(ctr, "command", f"{path}.command")
    c.strings(ctr, "args", f"{path}.args")
    c.text(ctr, "workingDir", f"{path}.workingDir")
    tmp = c.text(ctr, "terminationMessagePolicy", f"{path}.terminationMessagePolicy")
    if tmp is not None and tmp not in ("File", "FallbackToLogsOnError"):
        c.add(not_supported(f"{path}.terminationMessagePolicy", tmp, ["File", "FallbackToLogsOnError"]))
    validate_ports(c, ctr, f"{path}.ports", port_names)
    validate_env(c, ctr, f"{path}.env")
    validate_resources(c, ctr, f"{path}.resources")
    validate_volume_mounts(c, ctr, f"{path}.volumeMounts", volumes)
    sidecar = init and ctr.get("restartPolicy") == "Always"
    rp = c.text(ctr, "restartPolicy", f"{path}.restartPolicy")
    if rp is not None:
        if not init:
            c.add(forbidden(f"{path}.restartPolicy", "may not be set for non-init containers"))
        elif rp != "Always":
            c.add(not_supported(f"{path}.restartPolicy", rp, ["Always"]))
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.obj(ctr, probe_name, child(path, probe_name))
        if probe is None:
            continue
        if init and not sidecar:
            c.add(forbidden(child(path, probe_name),
                            "may not be set for init containers without restartPolicy=Always"))
            continue
        validate_probe(c, probe, child(path, probe_name), liveness_like=probe_name != "readinessProbe")
    lifecycle = c.obj(ctr, "lifecycle", f"{path}.lifecycle")
    for hook in ("postStart", "preStop"):
        h = c.obj(lifecycle, hook, child(path, f"lifecycle.{hook}"))
        if h is not None:
            validate_handler(c, h, child(path, f"lifecycle.{hook}"))
    sc = c.obj(ctr, "securityContext", f"{path}.securityContext")
    if sc is not None:
        validate_security_context(c, sc, f"{path}.securityContext")
