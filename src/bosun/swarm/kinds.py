"""The workload kinds a service can be, each answering the same questions (mode, replicas
as Docker prints them, how to scale), so listing and scaling code never names a kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bosun.api import kinds as api_kinds
from bosun.compose.translate.context import MODE_ANNOTATION

JSON = dict[str, Any]

DEPLOYMENTS = api_kinds.must_by_plural("apps", "v1", "deployments")
DAEMONSETS = api_kinds.must_by_plural("apps", "v1", "daemonsets")
JOBS = api_kinds.must_by_plural("batch", "v1", "jobs")


class NotScalable(Exception):
    """``service scale`` of a mode that has no replica count (Docker refuses it the same way)."""


def _spec(obj: JSON) -> JSON:
    return dict(obj.get("spec") or {})


def _status(obj: JSON) -> JSON:
    return dict(obj.get("status") or {})


def _annotated_mode(obj: JSON, default: str) -> str:
    return str(((obj.get("metadata") or {}).get("annotations") or {}).get(MODE_ANNOTATION) or default)


class Kind(Protocol):
    @property
    def resource(self) -> api_kinds.Kind: ...

    def mode(self, obj: JSON) -> str: ...

    def replicas(self, obj: JSON) -> str:
        """``running/desired`` as ``docker service ls`` prints it."""
        ...

    def scale_patch(self, obj: JSON, n: int) -> JSON:
        """The merge patch that sets ``n`` replicas; raises :class:`NotScalable`."""
        ...

    def progress(self, obj: JSON) -> tuple[int, int, bool]:
        """(tasks of the current spec running, tasks wanted, converged)."""
        ...


def _observed(obj: JSON) -> bool:
    return int(_status(obj).get("observedGeneration") or 0) >= int((obj.get("metadata") or {}).get("generation") or 0)


@dataclass(frozen=True, slots=True)
class Replicated:
    resource: api_kinds.Kind = DEPLOYMENTS

    def mode(self, obj: JSON) -> str:
        return "replicated"

    def replicas(self, obj: JSON) -> str:
        return f"{_status(obj).get('readyReplicas') or 0}/{_spec(obj).get('replicas', 1)}"

    def scale_patch(self, obj: JSON, n: int) -> JSON:
        return {"spec": {"replicas": n}}

    def progress(self, obj: JSON) -> tuple[int, int, bool]:
        want = int(_spec(obj).get("replicas", 1))
        st = _status(obj)
        done = min(int(st.get("updatedReplicas") or 0), int(st.get("readyReplicas") or 0), want)
        return done, want, _observed(obj) and done == want and int(st.get("replicas") or 0) == want


@dataclass(frozen=True, slots=True)
class Global:
    resource: api_kinds.Kind = DAEMONSETS

    def mode(self, obj: JSON) -> str:
        return "global"

    def replicas(self, obj: JSON) -> str:
        st = _status(obj)
        return f"{st.get('numberReady') or 0}/{st.get('desiredNumberScheduled') or 0}"

    def scale_patch(self, obj: JSON, n: int) -> JSON:
        raise NotScalable("scale can only be used with replicated or replicated-job mode")

    def progress(self, obj: JSON) -> tuple[int, int, bool]:
        st = _status(obj)
        want = int(st.get("desiredNumberScheduled") or 0)
        done = min(int(st.get("numberReady") or 0), int(st.get("updatedNumberScheduled") or 0))
        return done, want, _observed(obj) and done == want


@dataclass(frozen=True, slots=True)
class Job:
    resource: api_kinds.Kind = JOBS

    def mode(self, obj: JSON) -> str:
        return _annotated_mode(obj, "replicated-job")

    def replicas(self, obj: JSON) -> str:
        st = _status(obj)
        completions = _spec(obj).get("completions", 1)
        return f"{st.get('active') or 0}/{_spec(obj).get('parallelism', 1)} ({st.get('succeeded') or 0}/" \
               f"{completions} completed)"

    def scale_patch(self, obj: JSON, n: int) -> JSON:
        if self.mode(obj) != "replicated-job":
            raise NotScalable("scale can only be used with replicated or replicated-job mode")
        return {"spec": {"parallelism": n}}

    def progress(self, obj: JSON) -> tuple[int, int, bool]:
        st = _status(obj)
        want = int(_spec(obj).get("completions", 1))
        done = min(int(st.get("succeeded") or 0) + int(st.get("active") or 0), want)
        return done, want, done == want


KINDS: tuple[Kind, ...] = (Replicated(), Global(), Job())


def kind_of(obj: JSON) -> Kind:
    kind = str(obj.get("kind") or "")
    for k in KINDS:
        if k.resource.kind == kind:
            return k
    raise KeyError(kind)
