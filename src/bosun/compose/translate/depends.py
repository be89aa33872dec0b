"""depends_on, recorded on the workload (``bosun.io/depends-on``) for ordered creation:
``bosun stack deploy`` creates a service only once what it depends on is started, healthy
(ready) or completed successfully, across the whole cluster, in dependency order."""

from __future__ import annotations

import json

from bosun.compose.translate.context import JSON, Service, dns_name

DEPENDS_ANNOTATION = "bosun.io/depends-on"
CONDITIONS = frozenset({"service_started", "service_healthy", "service_completed_successfully"})


class DependsOn:
    fields = frozenset({"depends_on", "links"})

    def apply(self, svc: Service) -> list[JSON]:
        deps: JSON = {}
        for name, spec in (svc.spec.get("depends_on") or {}).items():
            condition = str(spec.get("condition") or "service_started")
            if condition not in CONDITIONS:
                svc.warn(f"depends_on.{name}.condition", f"{condition!r} is unknown; waiting for service_started")
                condition = "service_started"
            if spec.get("restart"):
                svc.warn(f"depends_on.{name}.restart", "not supported: a restarted dependency does not restart "
                                                       f"{svc.name}")
            dep = svc.stack.project.services.get(name)
            if condition == "service_healthy" and dep is not None and not (dep.get("healthcheck") or {}).get("test"):
                svc.warn(f"depends_on.{name}.condition", f"service_healthy, but {name} has no healthcheck: "
                                                         "waiting for it to be running")
            if name in svc.stack.project.services:
                deps[dns_name(name)] = {"condition": condition, "required": bool(spec.get("required", True))}
        if svc.spec.get("links"):
            svc.warn("links", "not needed: every service is reachable by its name in the stack")
        if deps:
            svc.workload_annotations[DEPENDS_ANNOTATION] = json.dumps(deps, sort_keys=True)
        return []
