"""APIService controller: an APIService per group version this server serves, and the
availability of those an aggregated API server serves.

Two of kube-aggregator's controllers in one:

- *autoregister*: every built-in group version and every Established CRD's versions get a
  Local APIService (``v1.apps``, ``v1.``), labelled ``kube-aggregator.kubernetes.io/automanaged``,
  Available because "Local APIServices are always available"; those of a CRD go with it;
- *availability*: an APIService naming a Service is Available only when the Service exists
  and listens on the port, its Endpoints have a ready address for it, and a discovery request
  (``GET /apis/<group>/<version>`` over TLS, verified with ``caBundle`` unless
  ``insecureSkipTLSVerify``) answers 2xx; otherwise Available=False with upstream's reason
  (ServiceNotFound, ServicePortError, EndpointsNotFound, MissingEndpoints,
  FailedDiscoveryCheck) and message. It looks again every ``RECHECK_SECONDS``.
"""

from __future__ import annotations

from bosun.api.aggregation import discovery_check, endpoint_of
from bosun.api.crd.rows import is_established, rows_of
from bosun.api.registry import RESOURCES
from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import Controller, Obj, resource, split_key
from bosun.controllers._kinds import CRDS

APISERVICES = resource("apiregistration.k8s.io", "v1", "apiservices")
SERVICES = resource("", "v1", "services")
ENDPOINTS = resource("", "v1", "endpoints")
AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"
RECHECK_SECONDS = 30.0
# Upstream's priorities of the built-in groups (kube-apiserver's apiVersionPriorities).
GROUP_PRIORITY = {
    "": 18000, "apps": 17800, "events.k8s.io": 17750, "authentication.k8s.io": 17700,
    "authorization.k8s.io": 17600, "autoscaling": 17500, "batch": 17400, "certificates.k8s.io": 17300,
    "networking.k8s.io": 17200, "policy": 17100, "rbac.authorization.k8s.io": 17000, "storage.k8s.io": 16800,
    "apiextensions.k8s.io": 16700, "admissionregistration.k8s.io": 16700, "scheduling.k8s.io": 16600,
    "coordination.k8s.io": 16500, "node.k8s.io": 16300, "discovery.k8s.io": 16200,
    "apiregistration.k8s.io": 18000,
}
CRD_GROUP_PRIORITY = 1000
BUILTIN_VERSIONS = sorted({(r.group, r.version) for r in RESOURCES})


def name_of(group: str, version: str) -> str:
    return f"{version}.{group}"


def local_api_service(group: str, version: str, priority: int, version_priority: int, managed: str) -> Obj:
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": name_of(group, version), "labels": {AUTOMANAGED: managed}},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": priority,
                     "versionPriority": version_priority}}


class APIServiceController(Controller):
    name = "apiservice"

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.inf = ctx.informers.get(APISERVICES)
        self.crds = ctx.informers.get(CRDS)
        self.services = ctx.informers.get(SERVICES)
        self.endpoints = ctx.informers.get(ENDPOINTS)
        self.inf.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)
        self.crds.add_handler(self._crd, lambda _o, n: self._crd(n), self._crd)
        for inf in (self.services, self.endpoints):
            inf.add_handler(self._backend, lambda _o, n: self._backend(n), self._backend)
        for group, version in BUILTIN_VERSIONS:
            self.queue.add(name_of(group, version))

    def _crd(self, crd: Obj) -> None:
        group = str((crd.get("spec") or {}).get("group"))
        for v in (crd.get("spec") or {}).get("versions") or []:
            if isinstance(v, dict):
                self.queue.add(name_of(group, str(v.get("name"))))

    def _backend(self, obj: Obj) -> None:
        """A Service or Endpoints changed: recheck the APIServices pointing at it."""
        m = obj.get("metadata") or {}
        for svc in self.inf.list():
            ref = (svc.get("spec") or {}).get("service") or {}
            if ref.get("name") == m.get("name") and ref.get("namespace") == m.get("namespace"):
                self.enqueue(svc)

    def _wanted_local(self, name: str) -> Obj | None:
        """The Local APIService this server would register under ``name`` (None: none)."""
        for group, version in BUILTIN_VERSIONS:
            if name_of(group, version) == name:
                return local_api_service(group, version, GROUP_PRIORITY.get(group, 1000), 15, "onstart")
        for crd in self.crds.list():
            if not is_established(crd) or crd["metadata"].get("deletionTimestamp"):
                continue
            for i, row in enumerate(rows_of(crd)):
                if name_of(row.group, row.version) == name:
                    return local_api_service(row.group, row.version, CRD_GROUP_PRIORITY, 100 - i, "true")
        return None

    async def reconcile(self, key: str) -> None:
        _, name = split_key(key)
        current = self.inf.get(None, name)
        wanted = self._wanted_local(name)
        if current is None:
            if wanted is not None:
                await self._create(wanted)
            return
        labels = (current.get("metadata") or {}).get("labels") or {}
        if wanted is None and labels.get(AUTOMANAGED) == "true":
            await self._delete(name)  # its CRD (or that version) is gone
            return
        spec = current.get("spec") or {}
        if not spec.get("service"):
            await self._set_available(current, "True", "Local", "Local APIServices are always available")
            return
        status, reason, message = await self._check(spec)
        await self._set_available(current, status, reason, message)
        self.queue.add_after(name, RECHECK_SECONDS)

    async def _check(self, spec: Obj) -> tuple[str, str, str]:
        ref = spec["service"]
        ns, svc_name, port = ref.get("namespace"), ref.get("name"), int(ref.get("port") or 443)
        svc = self.services.get(ns, svc_name)
        if svc is None:
            return "False", "ServiceNotFound", f'service/{svc_name} in "{ns}" is not present'
        target = endpoint_of(svc, self.endpoints.get(ns, svc_name), port)
        if isinstance(target, tuple):
            return "False", target[0], target[1]
        ok, message = await discovery_check(target, spec)
        if not ok:
            return "False", "FailedDiscoveryCheck", message
        return "True", "Passed", "all checks passed"

    async def _set_available(self, obj: Obj, value: str, reason: str, message: str) -> None:
        await self.write_conditions(APISERVICES, obj, [("Available", value, reason, message)])

    async def _create(self, body: Obj) -> None:
        try:
            await self.client.create(APISERVICES, body)
        except ApiError as exc:
            if exc.status != 409:
                raise

    async def _delete(self, name: str) -> None:
        try:
            await self.client.delete(APISERVICES, name)
        except ApiError as exc:
            if exc.status != 404:
                raise


async def run(ctx: ComponentContext) -> None:
    await APIServiceController(ctx).run()
