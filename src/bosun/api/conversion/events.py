"""events.k8s.io/v1 Event <-> core/v1 Event: one stored object, two views of it.

Kubernetes stores every Event once, as a core Event, and serves it in both groups; the field
mapping is upstream's (``pkg/apis/events/v1/conversion.go``): ``regarding`` is
``involvedObject``, ``note`` is ``message``, ``reportingController`` is
``reportingComponent``, the core fields the new API retired come back as ``deprecated*``
(``source``, ``firstTimestamp``, ``lastTimestamp``, ``count``), and the rest
(``eventTime``, ``series``, ``action``, ``reason``, ``related``, ``reportingInstance``,
``type``) keep their names. An Event written through events.k8s.io/v1 must also obey the
stricter rules of that API (an event time, who reports it, what it did), as upstream's
``ValidateEventCreate`` asks of requests in that version.
"""

from __future__ import annotations

import copy
from typing import Any

from bosun.api.errors import FieldError, invalid, required
from bosun.api.validation.meta import qualified_name

Obj = dict[str, Any]

# (events.k8s.io/v1 name, core/v1 name) of the fields that are renamed.
RENAMED: tuple[tuple[str, str], ...] = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)
SAME = ("eventTime", "series", "action", "reason", "related", "reportingInstance", "type")
# Upstream's limits (pkg/apis/core/validation/events.go).
REPORTING_INSTANCE_LIMIT = 128
ACTION_LIMIT = 128
REASON_LIMIT = 128
NOTE_LIMIT = 1024


def _map(obj: Obj, api_version: str, pairs: tuple[tuple[str, str], ...]) -> Obj:
    out: Obj = {"apiVersion": api_version, "kind": "Event"}
    if "metadata" in obj:
        out["metadata"] = copy.deepcopy(obj["metadata"])
    for src, dst in pairs:
        if obj.get(src) is not None:
            out[dst] = copy.deepcopy(obj[src])
    return out


class EventsV1:
    """events.k8s.io/v1 Event, stored as a core/v1 Event."""

    storage_group = ""
    storage_version = "v1"

    def to_storage(self, obj: Obj) -> Obj:
        out = _map(obj, "v1", (*RENAMED, *((f, f) for f in SAME)))
        out.setdefault("involvedObject", {})  # upstream's core Event always has one (maybe empty)
        return out

    def from_storage(self, obj: Obj) -> Obj:
        return _map(obj, "events.k8s.io/v1", (*((c, e) for e, c in RENAMED), *((f, f) for f in SAME)))

    def validate(self, obj: Obj) -> list[FieldError]:
        """What an Event created through events.k8s.io/v1 must carry beyond a core Event,
        with upstream's paths (which name the stored fields)."""
        errs: list[FieldError] = []
        if not obj.get("eventTime"):
            errs.append(required("eventTime"))
        etype = obj.get("type")
        if etype not in ("Normal", "Warning"):
            errs.append(invalid("type", "", f"has invalid value: {etype or ''}"))
        controller = obj.get("reportingController")
        if not controller:
            errs.append(required("reportingController"))
        elif isinstance(controller, str):
            errs += [invalid("reportingController", controller, m) for m in qualified_name(controller)]
        for name, limit in (("reportingInstance", REPORTING_INSTANCE_LIMIT), ("action", ACTION_LIMIT),
                            ("reason", REASON_LIMIT)):
            value = obj.get(name)
            if not value:
                errs.append(required(name))
            elif isinstance(value, str) and len(value) > limit:
                errs.append(invalid(name, "", f"can have at most {limit} characters"))
        note = obj.get("note")
        if isinstance(note, str) and len(note) > NOTE_LIMIT:
            errs.append(invalid("message", "", f"can have at most {NOTE_LIMIT} characters"))
        for name, core in (("deprecatedFirstTimestamp", "firstTimestamp"),
                           ("deprecatedLastTimestamp", "lastTimestamp"), ("deprecatedCount", "count")):
            if obj.get(name):
                errs.append(invalid(core, "", "needs to be unset"))
        source = obj.get("deprecatedSource")
        if isinstance(source, dict) and (source.get("component") or source.get("host")):
            errs.append(invalid("source", "", "needs to be unset"))
        series = obj.get("series")
        if isinstance(series, dict):
            count = series.get("count")
            if not isinstance(count, int) or count < 2:
                errs.append(invalid("series.count", "", "should be at least 2"))
            if not series.get("lastObservedTime"):
                errs.append(required("series.lastObservedTime"))
        return errs


EVENTS_V1 = EventsV1()
