"""Alert rule files are checked when they are written: a ConfigMap labelled
``bosun.io/alert-rules`` (:mod:`bosun.alerting.rulefile`) whose values do not parse as
Prometheus rule files, or whose expressions are not in the supported PromQL subset, is refused
with a 422 naming the key, the rule and the line and column of the error.
"""

from __future__ import annotations

from bosun.alerting.rulefile import RuleFileError, is_rule_configmap, parse_rule_file
from bosun.api import errors
from bosun.api.admission.base import CREATE, UPDATE, Operation, Request
from bosun.api.registry import Resource, must_by_plural

CONFIGMAPS = must_by_plural("", "v1", "configmaps")


class AlertRules:
    name = "AlertRules"
    mutating = False

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == CONFIGMAPS and operation in (CREATE, UPDATE) and subresource is None

    async def admit(self, req: Request) -> None:
        if not is_rule_configmap(req.obj):
            return
        bad = []
        for key, text in sorted((req.obj.get("data") or {}).items()):
            try:
                parse_rule_file(str(text))
            except RuleFileError as e:
                bad.append(errors.FieldError("FieldValueInvalid", f"data[{key}]", str(e)))
        if bad:
            raise errors.invalid_object(req.res.kind, req.name, bad, req.res.group)
