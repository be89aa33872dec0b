"""What an HPA's ``scaleTargetRef`` names, as a resource the client can read the ``scale``
subresource of: a built-in kind from the registry, any other kind (a CustomResourceDefinition
with ``subresources.scale``) from the API's discovery document of its group version, the way
upstream's scale client uses a REST mapper. Answers are remembered for ``ttl`` seconds, so a
CRD created after its HPA is found within that time and a busy controller asks discovery
once per kind, not once per HPA sync.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bosun.api.registry import Resource, by_kind
from bosun.client.errors import ApiError
from bosun.client.rest import Client


class TargetError(Exception):
    """Why the target cannot be scaled (said in the HPA's condition and event)."""


@dataclass
class ScaleTargets:
    client: Client
    ttl: float = 30.0
    _seen: dict[tuple[str, str], tuple[float, Resource | str]] = field(default_factory=dict)

    async def resolve(self, api_version: str, kind: str) -> Resource:
        """The resource of ``kind`` in ``api_version`` that has a scale subresource, or TargetError."""
        what = f"{api_version}/{kind}".lstrip("/")
        builtin = by_kind(api_version, kind)
        if builtin is not None:
            if "scale" not in builtin.subresources:
                raise TargetError(f"{what} has no scale subresource on this server")
            return builtin
        now = time.monotonic()
        hit = self._seen.get((api_version, kind))
        if hit is None or now - hit[0] > self.ttl:
            hit = self._seen[(api_version, kind)] = (now, await self._discover(api_version, kind))
        if isinstance(hit[1], str):
            raise TargetError(hit[1])
        return hit[1]

    async def _discover(self, api_version: str, kind: str) -> Resource | str:
        what = f"{api_version}/{kind}".lstrip("/")
        group, _, version = api_version.rpartition("/")
        if not group or not version:
            return f"{what} is not served by this server"
        try:
            found = await self.client.request("GET", f"/apis/{group}/{version}")
        except ApiError as exc:
            if exc.status == 404:
                return f"{what} is not served by this server"
            raise
        names = {str(r.get("name")) for r in found.get("resources") or []}
        for r in found.get("resources") or []:
            plural = str(r.get("name") or "")
            if r.get("kind") != kind or "/" in plural:
                continue
            if f"{plural}/scale" not in names:
                return f"{what} has no scale subresource on this server"
            return Resource(group, version, kind, plural, bool(r.get("namespaced")), subresources=("scale",))
        return f"{what} is not served by this server"
