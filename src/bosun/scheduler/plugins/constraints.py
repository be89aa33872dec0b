"""Swarm-style placement constraints from the ``bosun.io/constraints`` annotation.

``node.labels.storage==ssd,node.role!=manager``: every expression must hold. The compose
front end writes Swarm's ``deploy.placement.constraints`` here, so the names are Swarm's:
node.id / node.hostname / node.role / node.platform.os / node.platform.arch / node.labels.*
(engine.labels.* are read as node labels too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from bosun.scheduler.framework import CycleState, FilterResult
from bosun.scheduler.podinfo import CONSTRAINTS_ANNOTATION, HOSTNAME_LABEL, PodInfo, PodSpecError
from bosun.scheduler.snapshot import BoolArray, Snapshot

REASON = "node(s) didn't match the pod's bosun.io/constraints"
MANAGER_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master",
                  "node-role.kubernetes.io/manager")
_EXPR = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(==|!=)\s*([^=!<>~]*?)\s*$")
_PLAIN_KEYS = ("node.id", "node.name", "node.hostname", "node.role", "node.platform.os", "node.platform.arch")


@dataclass(frozen=True, slots=True)
class Constraint:
    key: str
    equal: bool
    value: str


def parse_constraints(text: str) -> tuple[Constraint, ...]:
    """Parse the annotation; PodSpecError naming the bad expression otherwise."""
    out: list[Constraint] = []
    for raw in text.split(","):
        if not raw.strip():
            continue
        m = _EXPR.match(raw)
        if m is None or not m.group(3):
            raise PodSpecError(f'invalid constraint "{raw.strip()}": expected KEY==VALUE or KEY!=VALUE')
        key, op, value = m.groups()
        if key not in _PLAIN_KEYS and not key.startswith(("node.labels.", "engine.labels.")):
            raise PodSpecError(f'invalid constraint "{raw.strip()}": unknown key "{key}"')
        if key.startswith(("node.labels.", "engine.labels.")) and not key.split(".labels.", 1)[1]:
            raise PodSpecError(f'invalid constraint "{raw.strip()}": empty label name')
        out.append(Constraint(key, op == "==", value))
    return tuple(out)


def _eq_mask(snap: Snapshot, c: Constraint) -> BoolArray:
    key = c.key
    if key in ("node.id", "node.name", "node.hostname"):
        m = np.zeros(snap.cap, bool)
        idx = snap.index.get(c.value)
        if idx is not None:
            m[idx] = True
        if key == "node.hostname":
            m |= snap.label_mask(HOSTNAME_LABEL, c.value)
        return m
    if key == "node.role":
        manager = np.zeros(snap.cap, bool)
        for label in MANAGER_LABELS:
            manager |= snap.label_mask(label)
        if c.value.lower() == "manager":
            return manager
        if c.value.lower() == "worker":
            return ~manager
        return np.zeros(snap.cap, bool)
    if key == "node.platform.os":
        return snap.label_mask("kubernetes.io/os", c.value)
    if key == "node.platform.arch":
        return snap.label_mask("kubernetes.io/arch", c.value)
    return snap.label_mask(key.split(".labels.", 1)[1], c.value)


def constraints_mask(snap: Snapshot, constraints: tuple[Constraint, ...]) -> BoolArray:
    m = np.ones(snap.cap, bool)
    for c in constraints:
        eq = _eq_mask(snap, c)
        m &= eq if c.equal else ~eq
    return m


class Constraints:
    name = "Constraints"

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[Constraint, ...]] = {}

    def parse(self, text: str) -> tuple[Constraint, ...]:
        got = self._parsed.get(text)
        if got is None:
            got = parse_constraints(text)
            if len(self._parsed) > 1024:
                self._parsed.clear()
            self._parsed[text] = got
        return got

    def relevant(self, pod: PodInfo) -> bool:
        return CONSTRAINTS_ANNOTATION in pod.annotations

    def filter(self, pod: PodInfo, snap: Snapshot, state: CycleState) -> FilterResult:
        return FilterResult(constraints_mask(snap, self.parse(pod.annotations[CONSTRAINTS_ANNOTATION])), REASON)
