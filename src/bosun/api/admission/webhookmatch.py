"""Which admission webhooks a write reaches: a configuration's webhooks compiled once, and
upstream's matching of a request against their rules, selectors and match conditions.

A configuration object is compiled into :class:`Webhook` values when it changes (not on each
write), so a write only compares strings and evaluates selectors. The rules follow upstream's
``admission/plugin/webhook`` matchers: ``*`` matches every resource but no subresource,
``pods/*`` every subresource of pods, ``*/status`` every status subresource, ``*/*``
everything; the namespace selector is asked about the namespace's labels (a Namespace's own
for a write of a Namespace) and never excludes a cluster-scoped write of another kind; the
object selector matches when the new or the old object's labels match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bosun.api.crd.cel import execute, reason
from bosun.api.selectors import EVERYTHING, LabelSelector, SelectorError, label_selector_from_dict

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rule:
    operations: frozenset[str]
    groups: frozenset[str]
    versions: frozenset[str]
    resources: tuple[str, ...]
    scope: str

    def matches(self, operation: str, group: str, version: str, plural: str, sub: str | None,
                namespaced: bool) -> bool:
        return (("*" in self.operations or operation in self.operations)
                and ("*" in self.groups or group in self.groups)
                and ("*" in self.versions or version in self.versions)
                and any(_resource_matches(r, plural, sub) for r in self.resources)
                and (self.scope == "*" or (self.scope == "Namespaced") == namespaced))


def _resource_matches(pattern: str, plural: str, sub: str | None) -> bool:
    if pattern == "*/*":
        return True
    res, slash, want_sub = pattern.partition("/")
    if not slash:
        return sub is None and res in ("*", plural)
    return sub is not None and res in ("*", plural) and want_sub in ("*", sub)


@dataclass(frozen=True, slots=True)
class Webhook:
    """One webhook of a configuration, ready to match and call."""

    name: str
    configuration: str
    rules: tuple[Rule, ...]
    namespace_selector: LabelSelector
    object_selector: LabelSelector
    # (name, expression) of each CEL match condition; all must hold for the call to happen.
    conditions: tuple[tuple[str, str], ...]
    fail_closed: bool  # failurePolicy Fail
    exact: bool  # matchPolicy Exact: another version of the same resource does not match
    side_effects: str
    timeout: float
    reinvoke: bool  # reinvocationPolicy IfNeeded (mutating webhooks)
    review_version: str  # the AdmissionReview apiVersion it is sent: v1 if it takes it
    client: Mapping[str, Any]  # clientConfig

    def calls_on_dry_run(self) -> bool:
        return self.side_effects in ("None", "NoneOnDryRun")


def compile_configuration(obj: Obj) -> list[Webhook]:
    """The webhooks of a stored (validated, defaulted) configuration; a part that does not
    compile (only possible for objects stored before a rule existed) drops its webhook."""
    config = str((obj.get("metadata") or {}).get("name") or "")
    out = []
    for hook in obj.get("webhooks") or []:
        try:
            out.append(_compile(config, hook))
        except (SelectorError, TypeError, ValueError, AttributeError):
            continue
    return out


def _compile(config: str, hook: Obj) -> Webhook:
    rules = tuple(
        Rule(frozenset(r.get("operations") or ()), frozenset(r.get("apiGroups") or ()),
             frozenset(r.get("apiVersions") or ()), tuple(r.get("resources") or ()), str(r.get("scope") or "*"))
        for r in hook.get("rules") or [])
    return Webhook(
        name=str(hook["name"]), configuration=config, rules=rules,
        namespace_selector=label_selector_from_dict(hook.get("namespaceSelector") or {}),
        object_selector=label_selector_from_dict(hook.get("objectSelector") or {}),
        conditions=tuple((str(c["name"]), str(c["expression"])) for c in hook.get("matchConditions") or []),
        fail_closed=hook.get("failurePolicy", "Fail") != "Ignore",
        exact=hook.get("matchPolicy") == "Exact",
        side_effects=str(hook.get("sideEffects") or "Unknown"),
        timeout=float(hook.get("timeoutSeconds") or 10),
        reinvoke=hook.get("reinvocationPolicy") == "IfNeeded",
        review_version="admission.k8s.io/" + ("v1" if "v1" in (hook.get("admissionReviewVersions") or ["v1"])
                                              else "v1beta1"),
        client=dict(hook.get("clientConfig") or {}),
    )


def _labels(obj: Obj | None) -> dict[str, str]:
    labels = ((obj or {}).get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def objects_match(hook: Webhook, obj: Obj | None, old: Obj | None) -> bool:
    sel = hook.object_selector
    if sel is EVERYTHING:
        return True
    return (obj is not None and sel.matches(_labels(obj))) or (old is not None and sel.matches(_labels(old)))


def namespace_matches(hook: Webhook, namespace_labels: dict[str, str] | None) -> bool:
    """``namespace_labels``: the labels of the write's namespace (a Namespace's own for a
    write of a Namespace), None for a cluster-scoped write of another kind (never excluded)."""
    if hook.namespace_selector is EVERYTHING or namespace_labels is None:
        return True
    return hook.namespace_selector.matches(namespace_labels)


class ConditionError(Exception):
    """A match condition that could not be evaluated (upstream: fails the call by its
    failure policy)."""


def conditions_hold(hook: Webhook, variables: Obj) -> bool:
    """Whether every match condition holds for the request (``object``, ``oldObject``,
    ``request``); ConditionError when one cannot be evaluated."""
    for name, expr in hook.conditions:
        try:
            result = execute(expr, variables)
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise ConditionError(f"match condition {name!r}: {reason(exc)}") from exc
        if result is not True:
            if result is False:
                return False
            raise ConditionError(f"match condition {name!r} did not evaluate to a bool: {result!r}")
    return True
