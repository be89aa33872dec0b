"""``kubectl get`` columns of the admission policy and API Priority and Fairness kinds, as
Kubernetes' printers write them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bosun.api.tables.format import AGE, NAME, Cells, Obj, age, col, dig, format_selector, name_of

_I = "integer"


def policy_row(o: Obj, now: datetime) -> Cells:
    kind = dig(o, "spec", "paramKind")
    param = f"{kind.get('apiVersion', '')}/{kind.get('kind', '')}" if isinstance(kind, dict) else "<unset>"
    return [name_of(o), len(dig(o, "spec", "validations") or []), param, age(o, now)]


def binding_row(o: Obj, now: datetime) -> Cells:
    ref = dig(o, "spec", "paramRef")
    param = "<unset>"
    if isinstance(ref, dict):
        if ref.get("name"):
            param = f"{ref.get('namespace') or '*'}/{ref['name']}"
        elif ref.get("selector") is not None:
            param = format_selector(ref["selector"])
        else:
            param = "<invalid>"
    return [name_of(o), dig(o, "spec", "policyName") or "", param, age(o, now)]


def flow_schema_row(o: Obj, now: datetime) -> Cells:
    method = dig(o, "spec", "distinguisherMethod", "type") or "<none>"
    missing = "?"
    for c in dig(o, "status", "conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Dangling":
            missing = str(c.get("status") or "?")
    return [name_of(o), dig(o, "spec", "priorityLevelConfiguration", "name") or "",
            dig(o, "spec", "matchingPrecedence") or 0, method, age(o, now), missing]


def priority_level_row(o: Obj, now: datetime) -> Cells:
    shares: Any = "<none>"
    queues: Any = "<none>"
    hand: Any = "<none>"
    length: Any = "<none>"
    limited = dig(o, "spec", "limited")
    if isinstance(limited, dict):
        shares = limited.get("nominalConcurrencyShares", "<none>")
        queuing = dig(limited, "limitResponse", "queuing")
        if isinstance(queuing, dict):
            queues, hand, length = (queuing.get(k, "<none>") for k in ("queues", "handSize", "queueLengthLimit"))
    return [name_of(o), dig(o, "spec", "type") or "", shares, queues, hand, length, age(o, now)]


PRINTERS: dict[tuple[str, str], tuple[list[Obj], Callable[[Obj, datetime], Cells]]] = {
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): (
        [NAME, col("Validations", _I), col("ParamKind"), AGE], policy_row),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): (
        [NAME, col("PolicyName"), col("ParamRef"), AGE], binding_row),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"): (
        [NAME, col("PriorityLevel"), col("MatchingPrecedence"), col("DistinguisherMethod"), AGE,
         col("MissingPL", desc="references a broken or non-existent PriorityLevelConfiguration")],
        flow_schema_row),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"): (
        [NAME, col("Type"), col("NominalConcurrencyShares"), col("Queues"), col("HandSize"),
         col("QueueLengthLimit"), AGE], priority_level_row),
}
