"""batch/v1: Job and CronJob."""

from __future__ import annotations

import re
import zoneinfo
from typing import Any

from bosun.api.errors import forbidden, invalid, not_supported, required
from bosun.api.validation.fields import Checker, child, go_string_map
from bosun.api.validation.meta import (
    dns1123_subdomain,
    selector_is_empty,
    selector_matches,
    validate_label_selector,
    validate_object_meta,
)
from bosun.api.validation.pod import validate_pod_template

CRON_NAME_MAX = 52
_EVERY = re.compile(r"^@every ([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def validate_job_spec(c: Checker, spec: dict[str, Any], path: str) -> None:
    for f in ("parallelism", "completions", "backoffLimit"):
        c.non_negative(spec, f, child(path, f))
    c.positive(spec, "activeDeadlineSeconds", child(path, "activeDeadlineSeconds"))
    c.non_negative(spec, "ttlSecondsAfterFinished", child(path, "ttlSecondsAfterFinished"))
    c.boolean(spec, "suspend", child(path, "suspend"))
    manual = c.boolean(spec, "manualSelector", child(path, "manualSelector"))
    mode = c.text(spec, "completionMode", child(path, "completionMode"))
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        c.add(not_supported(child(path, "completionMode"), mode, ["NonIndexed", "Indexed"]))
    if mode == "Indexed" and spec.get("completions") is None:
        c.add(required(child(path, "completions"), "when completion mode is Indexed"))
    prp = c.text(spec, "podReplacementPolicy", child(path, "podReplacementPolicy"))
    if prp is not None and prp not in ("TerminatingOrFailed", "Failed"):
        c.add(not_supported(child(path, "podReplacementPolicy"), prp, ["Failed", "TerminatingOrFailed"]))
    sel = c.obj(spec, "selector", child(path, "selector"))
    if sel is not None:
        n = len(c.errors)
        validate_label_selector(c, sel, child(path, "selector"))
        if len(c.errors) > n or selector_is_empty(sel):
            sel = None
    elif manual:
        c.add(required(child(path, "selector")))
    pod_spec, labels = validate_pod_template(c, spec, child(path, "template"))
    if sel is not None and isinstance(spec.get("template"), dict) and not selector_matches(sel, labels):
        c.add(invalid(child(path, "template.metadata.labels"), go_string_map(labels),
                      "`selector` does not match template `labels`"))
    rp = pod_spec.get("restartPolicy")
    if isinstance(spec.get("template"), dict) and rp not in ("OnFailure", "Never"):
        c.add(not_supported(child(path, "template.spec.restartPolicy"), rp if isinstance(rp, str) else "",
                            ["OnFailure", "Never"]))


def validate_job(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec")
    if spec is None:
        c.add(required("spec.template"))
        return
    validate_job_spec(c, spec, "spec")


def schedule_errors(schedule: str) -> list[str]:
    """Why ``schedule`` is not a cron schedule (empty when it is one)."""
    if "TZ=" in schedule:
        return ["cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]
    text = schedule.strip()
    if text in _CRON_MACROS or _EVERY.match(text):
        return []
    fields = text.split()
    if len(fields) != 5:
        return [f"Expected exactly 5 fields, found {len(fields)}: {schedule}"]
    from croniter import croniter  # a tenth of a second to import, for CronJobs only (the CLI imports this)

    try:
        if not croniter.is_valid(text):
            return [f"unparseable schedule: {schedule}"]
    except Exception as exc:  # croniter raises assorted types on odd input
        return [f"unparseable schedule: {exc}"]
    return []


def validate_cronjob(c: Checker, obj: dict[str, Any]) -> None:
    meta = validate_object_meta(c, obj, dns1123_subdomain)
    name = meta.get("name")
    if isinstance(name, str) and len(name) > CRON_NAME_MAX:
        c.add(invalid("metadata.name", name, f"must be no more than {CRON_NAME_MAX} characters"))
    spec = c.obj(obj, "spec", "spec")
    if spec is None:
        c.add(required("spec.schedule"))
        c.add(required("spec.jobTemplate"))
        return
    schedule = c.text(spec, "schedule", "spec.schedule")
    if not schedule:
        if "schedule" not in spec or schedule == "":
            c.add(required("spec.schedule"))
    else:
        for msg in schedule_errors(schedule):
            c.add(invalid("spec.schedule", schedule, msg))
    tz = c.text(spec, "timeZone", "spec.timeZone")
    if tz is not None:
        if tz == "" or tz.lower() == "local" or " " in tz:
            c.add(invalid("spec.timeZone", tz, "unknown time zone " + tz))
        else:
            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                c.add(invalid("spec.timeZone", tz, "unknown time zone " + tz))
    policy = c.text(spec, "concurrencyPolicy", "spec.concurrencyPolicy")
    if policy is not None and policy not in ("Allow", "Forbid", "Replace"):
        c.add(not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"]))
    c.non_negative(spec, "startingDeadlineSeconds", "spec.startingDeadlineSeconds")
    c.non_negative(spec, "successfulJobsHistoryLimit", "spec.successfulJobsHistoryLimit")
    c.non_negative(spec, "failedJobsHistoryLimit", "spec.failedJobsHistoryLimit")
    c.boolean(spec, "suspend", "spec.suspend")
    jt = c.obj(spec, "jobTemplate", "spec.jobTemplate")
    if jt is None:
        if spec.get("jobTemplate") is None:
            c.add(required("spec.jobTemplate"))
        return
    jspec = c.obj(jt, "spec", "spec.jobTemplate.spec")
    if jspec is None:
        c.add(required("spec.jobTemplate.spec.template"))
        return
    if jspec.get("manualSelector") is True:
        c.add(forbidden("spec.jobTemplate.spec.manualSelector", "`manualSelector` is not supported"))
    validate_job_spec(c, jspec, "spec.jobTemplate.spec")
