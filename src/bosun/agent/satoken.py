"""The ServiceAccount tokens of one pod's projected volumes, as kubelet's token manager keeps them.

Each ``serviceAccountToken`` projection gets a token from the TokenRequest API, bound to
the pod (so it dies with the pod) and for the projection's audience. The pod's volumes are
rewritten every sync; a token is asked for again once 80% of its life has passed or it is
a day old, whichever comes first, so a long-running client always finds a valid token in
the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bosun.agent.refs import ConfigError
from bosun.api.registry import must_by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client

ACCOUNTS = must_by_plural("", "v1", "serviceaccounts")
REFRESH_FRACTION = 0.8
MAX_AGE = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class _Held:
    token: bytes
    refresh_at: float


class PodTokens:
    def __init__(self, client: Client, pod: dict[str, Any]) -> None:
        self.client = client
        meta = pod["metadata"]
        self.namespace = str(meta["namespace"])
        self.pod_name = str(meta["name"])
        self.pod_uid = str(meta["uid"])
        spec = pod.get("spec") or {}
        self.account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        self._held: dict[tuple[str, int], _Held] = {}

    async def token(self, audience: str | None, expiration: int) -> bytes:
        key = (audience or "", expiration)
        now = time.time()
        held = self._held.get(key)
        if held is not None and now < held.refresh_at:
            return held.token
        spec: dict[str, Any] = {"expirationSeconds": expiration,
                                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": self.pod_name,
                                                   "uid": self.pod_uid}}
        if audience:
            spec["audiences"] = [audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "metadata": {"name": self.account, "namespace": self.namespace}, "spec": spec}
        try:
            out = await self.client.create(ACCOUNTS, body, self.namespace, subresource="token")
        except ApiError as exc:
            if held is not None and now < held.refresh_at + (1 - REFRESH_FRACTION) * expiration:
                return held.token  # still valid: try again at the next sync
            raise ConfigError(f'failed to fetch token: {exc}') from exc
        token = str((out.get("status") or {}).get("token") or "").encode()
        life = min(float(expiration), MAX_AGE / REFRESH_FRACTION)
        self._held[key] = _Held(token, now + REFRESH_FRACTION * life)
        return token
