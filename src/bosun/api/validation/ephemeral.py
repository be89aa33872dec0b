"""Writes through a pod's ``ephemeralcontainers`` subresource (``kubectl debug``): debug
containers may be added to a running pod, never changed or removed once there; each is a
container with no ports, probes, lifecycle hooks, resources or restart policy of its own,
whose ``targetContainerName`` (the process namespace it joins) names one of the pod's
containers (Kubernetes' ValidatePodEphemeralContainersUpdate)."""

from __future__ import annotations

from typing import Any

from bosun.api.errors import FieldError, duplicate, forbidden, invalid
from bosun.api.validation.containers import validate_container
from bosun.api.validation.fields import Checker

FIELD = "spec.ephemeralContainers"
_NOT_FOR_EPHEMERAL = ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resources",
                      "resizePolicy", "restartPolicy")


def _named(items: Any) -> dict[str, dict[str, Any]]:
    return {str(x.get("name")): x for x in items or [] if isinstance(x, dict)}


def validate_ephemeral_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    nspec, ospec = new.get("spec") or {}, old.get("spec") or {}
    added = nspec.get("ephemeralContainers") or []
    if not isinstance(added, list):
        return [invalid(FIELD, added, "must be a list of containers")]
    c = Checker()
    before, after = _named(ospec.get("ephemeralContainers")), _named(added)
    for name, container in before.items():
        if name not in after:
            c.add(forbidden(FIELD, f'existing ephemeral containers "{name}" may not be removed'))
        elif after[name] != container:
            c.add(forbidden(FIELD, f'existing ephemeral containers "{name}" may not be changed'))
    targets = set(_named(ospec.get("containers"))) | set(_named(ospec.get("initContainers")))
    taken = set(targets)
    volumes = set(_named(ospec.get("volumes")))
    for i, ec in enumerate(added):
        path = f"{FIELD}[{i}]"
        if not isinstance(ec, dict):
            c.add(invalid(path, ec, "must be a container"))
            continue
        name = str(ec.get("name") or "")
        if name in before:
            taken.add(name)
            continue
        validate_container(c, ec, path, volumes=volumes, port_names=set(), init=False)
        if name in taken:
            c.add(duplicate(f"{path}.name", name))
        taken.add(name)
        for f in _NOT_FOR_EPHEMERAL:
            if ec.get(f) not in (None, {}, [], ""):
                c.add(forbidden(f"{path}.{f}", "cannot be set for an Ephemeral Container"))
        target = ec.get("targetContainerName")
        if target and target not in targets:
            c.add(FieldError("FieldValueNotFound", f"{path}.targetContainerName", "", target, True))
    return c.errors
