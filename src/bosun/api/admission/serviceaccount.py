"""Kubernetes' ServiceAccount admission: a pod runs as an account, and gets its token.

A new pod without ``serviceAccountName`` runs as ``default``; one naming an account that
does not exist is refused. Unless the pod or its account turns automounting off, every
container gets the ``kube-api-access-*`` projected volume at
``/var/run/secrets/kubernetes.io/serviceaccount``: a token bound to the pod (written by the
node agent through TokenRequest), the cluster CA and the namespace, which is what
in-cluster clients (the official clients, kopf, client-go) read.

One difference from upstream: a pod created before its namespace's ``default`` account
exists (it is made by the serviceaccount controller a moment after the namespace, and not
at all by a bare API server without controllers) is admitted without the token volume
rather than refused.
"""

from __future__ import annotations

import secrets
import string

from bosun.api import errors
from bosun.api.admission.base import CREATE, Obj, Operation, Reader, Request
from bosun.api.errors import APIError
from bosun.api.registry import Resource, must_by_plural

PODS = must_by_plural("", "v1", "pods")
ACCOUNTS = must_by_plural("", "v1", "serviceaccounts")
DEFAULT = "default"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# Upstream's: a little over an hour, so that the token is refreshed within the hour.
TOKEN_SECONDS = 3607
_SUFFIX = string.ascii_lowercase + string.digits


def token_volume(name: str) -> Obj:
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


class ServiceAccount:
    name = "ServiceAccount"
    mutating = True

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == PODS and operation == CREATE and subresource is None

    async def admit(self, req: Request) -> None:
        spec = req.obj.get("spec")
        if not isinstance(spec, dict):
            return
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT
        if not isinstance(name, str):
            return  # validation reports it
        spec["serviceAccountName"] = name
        spec["serviceAccount"] = name  # the deprecated alias, kept equal as upstream does
        try:
            account = await self.reader.get(ACCOUNTS, req.namespace, name)
        except APIError as exc:
            if exc.code != 404:
                raise
            if name == DEFAULT:
                return
            raise errors.forbidden_request(
                f'pods "{req.name}" is forbidden: error looking up service account {req.namespace}/{name}: '
                f'serviceaccount "{name}" not found') from exc
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = account.get("automountServiceAccountToken")
        if automount is False:
            return
        self._mount_token(spec)

    @staticmethod
    def _mount_token(spec: Obj) -> None:
        containers = [c for field in ("initContainers", "containers") for c in spec.get(field) or []
                      if isinstance(c, dict)]
        if any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH
               for c in containers for m in c.get("volumeMounts") or []):
            return  # the pod mounts something of its own there
        volume = f"kube-api-access-{''.join(secrets.choice(_SUFFIX) for _ in range(5))}"
        volumes = spec.get("volumes")
        spec["volumes"] = [*(volumes if isinstance(volumes, list) else []), token_volume(volume)]
        for c in containers:
            mounts = c.get("volumeMounts")
            c["volumeMounts"] = [*(mounts if isinstance(mounts, list) else []),
                                 {"name": volume, "readOnly": True, "mountPath": MOUNT_PATH}]
