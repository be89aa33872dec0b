"""``x-bosun-ingress``: a service's HTTP route by host name and path, as an Ingress.

    services:
      web:
        image: nginx
        ports: ["8080:80"]
        x-bosun-ingress: {host: shop.example.com, path: /, tls: shop-cert}   # or a list of them

Each entry is one rule: ``host`` (required), ``path`` (a ``Prefix``, default ``/``), ``port``
(the service's port, default its first TCP one) and ``tls`` (a Secret of type
``kubernetes.io/tls`` in the stack's namespace). The Ingress is named after the service and
carries its labels, so it leaves with the service and the stack. An extension key, not a
label: a rule has several parts, and a compose file's other tools ignore ``x-`` keys.
"""

from __future__ import annotations

from typing import Any

from bosun.compose.translate.context import JSON, Service

KEY = "x-bosun-ingress"


def _target_port(svc: Service, wanted: Any) -> int | None:
    ports = [p for p in svc.container.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
    if wanted is not None:
        try:
            number = int(wanted)
        except (TypeError, ValueError):
            return None
        return number if any(p["containerPort"] == number for p in ports) else None
    return int(ports[0]["containerPort"]) if ports else None


class Ingress:
    fields = frozenset({KEY})

    def apply(self, svc: Service) -> list[JSON]:
        raw = svc.spec.get(KEY)
        if raw is None:
            return []
        entries = raw if isinstance(raw, list) else [raw]
        rules: list[JSON] = []
        tls: list[JSON] = []
        ports: set[int] = set()
        for i, entry in enumerate(entries):
            where = KEY if len(entries) == 1 else f"{KEY}[{i}]"
            if not isinstance(entry, dict) or not entry.get("host"):
                svc.warn(where, "needs a host (e.g. {host: shop.example.com}); ignored")
                continue
            port = _target_port(svc, entry.get("port"))
            if port is None:
                svc.warn(where, "names no port the service exposes (add ports or expose, or a matching port:); "
                                "ignored")
                continue
            ports.add(port)
            host, path = str(entry["host"]), str(entry.get("path") or "/")
            rules.append({"host": host, "http": {"paths": [{
                "path": path, "pathType": "Prefix",
                "backend": {"service": {"name": svc.dns, "port": {"number": port}}}}]}})
            if entry.get("tls"):
                tls.append({"hosts": [host], "secretName": str(entry["tls"])})
        if not rules:
            return []
        spec: JSON = {"rules": rules}
        if tls:
            spec["tls"] = tls
        # The nginx of every node forwards to these ports: like a published port, they answer
        # from outside the service's networks (its network policy admits its networks only).
        reachable = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": svc.metadata(f"{svc.dns}-ingress"),
                     "spec": {"podSelector": {"matchLabels": svc.selector()}, "policyTypes": ["Ingress"],
                              "ingress": [{"ports": [{"port": p, "protocol": "TCP"} for p in sorted(ports)]}]}}
        return [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": svc.metadata(), "spec": spec},
                reachable]
