"""NetworkPolicy defaults, as Kubernetes' SetDefaults_NetworkPolicy and _NetworkPolicyPort.

``policyTypes`` is what the node's packet filter reads to know which directions a policy
isolates, so it is always stored: ``Ingress``, plus ``Egress`` when egress rules are given.
"""

from __future__ import annotations

from typing import Any

from bosun.api.defaults.pod import _dicts, _set


def default_network_policy(obj: dict[str, Any]) -> None:
    if obj.get("spec") is None:
        obj["spec"] = {}
    spec = obj["spec"]
    if not isinstance(spec, dict):
        return
    # A Go struct, not a pointer: an absent selector is the empty one, which selects every pod.
    _set(spec, "podSelector", {})
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec, direction):
            for port in _dicts(rule, "ports"):
                _set(port, "protocol", "TCP")
    if not spec.get("policyTypes"):
        egress = spec.get("egress")
        spec["policyTypes"] = ["Ingress", "Egress"] if isinstance(egress, list) and egress else ["Ingress"]
