"""``service inspect --pretty``: the workload in ``docker service inspect --pretty``'s layout."""

from __future__ import annotations

import json
from typing import Any

from bosun.compose.translate.updates import ROLLBACK_ANNOTATION, UPDATE_ANNOTATION
from bosun.swarm.services import ServiceRef
from bosun.swarm.update_status import UpdateStatus

JSON = dict[str, Any]


def _rolling(obj: JSON) -> JSON:
    spec = obj.get("spec") or {}
    strategy = spec.get("strategy") or spec.get("updateStrategy") or {}
    return dict(strategy.get("rollingUpdate") or {})


def pretty(s: ServiceRef) -> str:
    meta = s.obj.get("metadata") or {}
    spec = s.obj.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    c = (pod.get("containers") or [{}])[0]
    ann = meta.get("annotations") or {}
    lines = [f"ID:\t\t{s.id}", f"Name:\t\t{s.display}"]
    labels = meta.get("labels") or {}
    if labels:
        lines.append("Labels:")
        lines.extend(f" {k}={v}" for k, v in sorted(labels.items()))
    lines.append(f"Service Mode:\t{s.mode.capitalize()}")
    if "replicas" in spec:
        lines.append(f" Replicas:\t{spec['replicas']}")
    affinity = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    exprs = [e for t in affinity.get("nodeSelectorTerms") or [] for e in t.get("matchExpressions") or []]
    if exprs:
        lines.append("Placement:")
        lines.extend(f" Constraint:\t{e['key']} {e['operator']} {','.join(e.get('values') or [])}".rstrip()
                     for e in exprs)
    status = UpdateStatus.of(s.obj)
    if status is not None and status.state:  # as Docker: none before the first update
        lines += ["UpdateStatus:", f" State:\t\t{status.state}"]
        lines += [f" {word}:\t{value}" for word, value in (("Started", status.started_at),
                                                            ("Completed", status.completed_at)) if value]
        lines.append(f" Message:\t{status.message}")
    rolling = _rolling(s.obj)
    if rolling:
        update = json.loads(ann.get(UPDATE_ANNOTATION) or "{}")
        start_first = rolling.get("maxUnavailable") in (0, "0")
        lines += ["UpdateConfig:",
                  f" Parallelism:\t{rolling.get('maxSurge') if start_first else rolling.get('maxUnavailable')}",
                  f" Delay:\t\t{update.get('delay', '0s')}",
                  f" On failure:\t{update.get('failure_action', 'pause')}",
                  f" Monitor:\t{update.get('monitor', '5s')}",
                  f" Update order:\t{'start-first' if start_first else 'stop-first'}"]
    if ann.get(ROLLBACK_ANNOTATION):
        lines.append(f"RollbackConfig:\t{ann[ROLLBACK_ANNOTATION]}")
    lines += ["ContainerSpec:", f" Image:\t\t{c.get('image', '')}"]
    if c.get("command"):
        lines.append(f" Command:\t{' '.join(c['command'])}")
    if c.get("args"):
        lines.append(f" Args:\t\t{' '.join(c['args'])}")
    if c.get("env"):
        lines.append(" Env:\t\t" + " ".join(f"{e['name']}={e.get('value', '')}" for e in c["env"]))
    res = c.get("resources") or {}
    if res:
        lines.append("Resources:")
        for word, key in (("Limits", "limits"), ("Reservations", "requests")):
            if res.get(key):
                lines.append(f" {word}:")
                lines.extend(f"  {k.upper() if k == 'cpu' else k.capitalize()}:\t{v}" for k, v in res[key].items())
    ports = c.get("ports") or []
    if ports:
        lines.append("Ports:")
        lines.extend(f" TargetPort = {p['containerPort']}, Protocol = {str(p.get('protocol', 'TCP')).lower()}"
                     + (f", PublishedPort = {p['hostPort']}, PublishMode = host" if p.get("hostPort") else "")
                     for p in ports)
    return "\n".join(lines)
