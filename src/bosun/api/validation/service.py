"""Services: type, ports, node ports, cluster IPs, selector, traffic policies."""

from __future__ import annotations

from typing import Any

from bosun.api import published
from bosun.api.errors import duplicate, forbidden, invalid, not_supported, required
from bosun.api.validation.containers import PROTOCOLS, validate_port_number
from bosun.api.validation.core import IP_MSG, valid_ip
from bosun.api.validation.fields import Checker, child, index
from bosun.api.validation.meta import (
    check_name,
    dns1035_label,
    dns1123_label,
    dns1123_subdomain,
    qualified_name,
    validate_labels,
    validate_object_meta,
)

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
NODE_PORT_RANGE = published.NODE_PORT_RANGE


def _validate_cluster_ips(c: Checker, spec: dict[str, Any], stype: str) -> None:
    cip = c.text(spec, "clusterIP", "spec.clusterIP")
    ips = c.strings(spec, "clusterIPs", "spec.clusterIPs")
    if cip and ips and ips[0] != cip:
        c.add(invalid("spec.clusterIPs", ips, "element [0] must match clusterIP"))
    values = ips or ([cip] if cip else [])
    if stype == "ExternalName":
        if values:
            c.add(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        return
    for i, ip in enumerate(values):
        path = index("spec.clusterIPs", i)
        if ip == "None":
            if i > 0 or len(values) > 1:
                c.add(invalid(path, ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
            elif stype in ("NodePort", "LoadBalancer"):
                c.add(invalid(path, ip, "may not be set to 'None' for LoadBalancer services or NodePorts"))
        elif ip and not valid_ip(ip):
            c.add(invalid(path, ip, IP_MSG))


def _published(c: Checker, obj: dict[str, Any]) -> set[tuple[int, str]]:
    """The ports the Service says it publishes (see :mod:`bosun.api.published`): node ports
    outside the range are allowed for these only."""
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    text = annotations.get(published.ANNOTATION) if isinstance(annotations, dict) else None
    if not text:
        return set()
    try:
        return {(pub, proto.upper()) for pub, _, proto in published.parse(str(text))}
    except published.BadPublished as exc:
        c.add(invalid(f"metadata.annotations[{published.ANNOTATION}]", text, str(exc)))
        return set()


def _validate_ports(c: Checker, spec: dict[str, Any], stype: str, headless: bool,
                    declared: set[tuple[int, str]]) -> None:
    ports = c.objects(spec, "ports", "spec.ports")
    if not spec.get("ports") and stype != "ExternalName" and not headless:
        c.add(required("spec.ports"))
    names: set[str] = set()
    node_ports: set[tuple[int, str]] = set()
    pairs: set[tuple[int, str]] = set()
    lo, hi = NODE_PORT_RANGE
    for i, port in ports:
        p = index("spec.ports", i)
        name = c.text(port, "name", child(p, "name"))
        if name:
            check_name(c, name, child(p, "name"), dns1123_label)
            if name in names:
                c.add(duplicate(child(p, "name"), name))
            names.add(name)
        elif len(ports) > 1:
            c.add(required(child(p, "name")))
        number = c.integer(port, "port", child(p, "port"))
        if "port" not in port:
            c.add(required(child(p, "port")))
        elif number is not None and not 1 <= number <= 65535:
            c.add(invalid(child(p, "port"), number, "must be between 1 and 65535, inclusive"))
        proto = c.text(port, "protocol", child(p, "protocol")) or "TCP"
        if proto not in PROTOCOLS:
            c.add(not_supported(child(p, "protocol"), proto, PROTOCOLS))
        if number is not None:
            if (number, proto) in pairs:
                c.add(duplicate(p, f"{number}/{proto}"))
            pairs.add((number, proto))
        if "targetPort" in port and port["targetPort"] is not None:
            tp = port["targetPort"]
            if tp == 0 or tp == "":
                c.add(required(child(p, "targetPort")))
            else:
                validate_port_number(c, tp, child(p, "targetPort"))
        np = c.integer(port, "nodePort", child(p, "nodePort"))
        if np:
            if stype not in ("NodePort", "LoadBalancer"):
                c.add(forbidden(child(p, "nodePort"), f"may not be used when `type` is '{stype}'"))
            elif not 1 <= np <= 65535:
                c.add(invalid(child(p, "nodePort"), np, "must be between 1 and 65535, inclusive"))
            elif not lo <= np <= hi and (np, proto) not in declared:
                c.add(invalid(child(p, "nodePort"), np, "provided port is not in the valid range. "
                                                      f"The range of valid ports is {lo}-{hi}"))
            elif (np, proto) in node_ports:
                c.add(duplicate(child(p, "nodePort"), np))
            node_ports.add((np, proto))
        ap = c.text(port, "appProtocol", child(p, "appProtocol"))
        if ap:
            for msg in qualified_name(ap):
                c.add(invalid(child(p, "appProtocol"), ap, msg))


def validate_service(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1035_label)
    spec = c.obj(obj, "spec", "spec")
    if spec is None:
        c.add(required("spec.ports"))
        return
    stype = c.text(spec, "type", "spec.type") or "ClusterIP"
    if stype not in SERVICE_TYPES:
        c.add(not_supported("spec.type", stype, SERVICE_TYPES))
    headless = spec.get("clusterIP") == "None" or (spec.get("clusterIPs") or [None]) == ["None"]
    _validate_cluster_ips(c, spec, stype)
    _validate_ports(c, spec, stype, headless, _published(c, obj))
    if stype == "ExternalName":
        ext = c.text(spec, "externalName", "spec.externalName")
        if not ext:
            c.add(required("spec.externalName"))
        else:
            check_name(c, ext.removesuffix("."), "spec.externalName", dns1123_subdomain)
    validate_labels(c, spec, "selector", "spec.selector")
    sa = c.text(spec, "sessionAffinity", "spec.sessionAffinity")
    if sa is not None and sa not in ("ClientIP", "None"):
        c.add(not_supported("spec.sessionAffinity", sa, ["ClientIP", "None"]))
    cfg = c.obj(spec, "sessionAffinityConfig", "spec.sessionAffinityConfig")
    if cfg is not None:
        cip = c.obj(cfg, "clientIP", "spec.sessionAffinityConfig.clientIP") or {}
        c.in_range(cip, "timeoutSeconds", "spec.sessionAffinityConfig.clientIP.timeoutSeconds", 1, 86400)
    etp = c.text(spec, "externalTrafficPolicy", "spec.externalTrafficPolicy")
    if etp:
        if stype not in ("NodePort", "LoadBalancer"):
            c.add(invalid("spec.externalTrafficPolicy", etp,
                          "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
        elif etp not in ("Cluster", "Local"):
            c.add(not_supported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"]))
    itp = c.text(spec, "internalTrafficPolicy", "spec.internalTrafficPolicy")
    if itp and itp not in ("Cluster", "Local"):
        c.add(not_supported("spec.internalTrafficPolicy", itp, ["Cluster", "Local"]))
    for i, ip in enumerate(c.strings(spec, "externalIPs", "spec.externalIPs")):
        if not valid_ip(ip):
            c.add(invalid(index("spec.externalIPs", i), ip, IP_MSG))
    for f in ("ipFamilies",):
        for i, fam in enumerate(c.strings(spec, f, f"spec.{f}")):
            if fam not in ("IPv4", "IPv6"):
                c.add(not_supported(index("spec.ipFamilies", i), fam, ["IPv4", "IPv6"]))
    pol = c.text(spec, "ipFamilyPolicy", "spec.ipFamilyPolicy")
    if pol is not None and pol not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
        c.add(not_supported("spec.ipFamilyPolicy", pol,
                            ["PreferDualStack", "RequireDualStack", "SingleStack"]))
    c.boolean(spec, "publishNotReadyAddresses", "spec.publishNotReadyAddresses")
    c.boolean(spec, "allocateLoadBalancerNodePorts", "spec.allocateLoadBalancerNodePorts")
