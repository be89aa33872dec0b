"""Kubernetes' ServiceAccount admission: a pod runs as an account that exists, and gets its token.

As upstream's one plugin acts in both phases, two plugins here. :class:`ServiceAccount`
(mutating) gives a new pod without ``serviceAccountName`` the ``default`` account, refuses
one whose account does not exist (403, ``error looking up service account NS/NAME:
serviceaccount "NAME" not found``), copies the account's ``imagePullSecrets`` to a pod that
names none and, unless the pod or its account turns automounting off, gives every container
the ``kube-api-access-*`` projected volume at ``/var/run/secrets/kubernetes.io/serviceaccount``:
a token bound to the pod (written by the node agent through TokenRequest), the cluster CA and
the namespace, which is what in-cluster clients (the official clients, kopf, client-go) read.
:class:`ServiceAccountCheck` (validating) checks the same again after the mutating webhooks
(a pod they left without an account is refused: ``no service account specified for pod``).

An account is looked up in the watch cache first, then read from the store, as upstream reads
its informer and then the API: the ``default`` account up to ten times, 100-200 ms apart,
since the serviceaccount controller makes it a moment after its namespace (which is why that
controller runs in every control plane, as the collectors do). A mirror pod (annotated
``kubernetes.io/config.mirror``) is not changed, and refused if it names an account, a Secret
or a projected token or ClusterTrustBundle, as upstream does. An account annotated
``kubernetes.io/enforce-mountable-secrets: "true"`` limits its pods to the Secrets it lists
(:mod:`bosun.api.admission.mountablesecrets`), checked in the validating half, on create and
when ephemeral containers are added.
"""

from __future__ import annotations

import asyncio
import random
import string
from collections.abc import Iterator
from typing import Any, Protocol

from bosun.api import errors
from bosun.api.admission import mountablesecrets
from bosun.api.admission.base import CREATE, UPDATE, Obj, Operation, Reader, Request
from bosun.api.errors import APIError
from bosun.api.objects import random_suffix
from bosun.api.registry import Resource, must_by_plural

PODS = must_by_plural("", "v1", "pods")
ACCOUNTS = must_by_plural("", "v1", "serviceaccounts")
DEFAULT = "default"
EPHEMERAL = "ephemeralcontainers"
MIRROR = "kubernetes.io/config.mirror"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# Upstream's: a little over an hour, so that the token is refreshed within the hour.
TOKEN_SECONDS = 3607
# Reads of the ``default`` account before it is declared missing (upstream's).
DEFAULT_ATTEMPTS = 10
_SUFFIX = string.ascii_lowercase + string.digits


class CachedObjects(Protocol):
    """Objects as the watch cache holds them (None: not there, or no cache yet)."""

    def get(self, res: Resource, namespace: str | None, name: str) -> Obj | None: ...


def token_volume(name: str) -> Obj:
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


class Accounts:
    """Finds a pod's account: the cache, then the store (retried for ``default``)."""

    def __init__(self, reader: Reader, cached: CachedObjects | None = None) -> None:
        self.reader = reader
        self.cached = cached

    async def find(self, req: Request, name: str) -> Obj:
        """The account, or the 403 upstream answers when it cannot be found."""
        found = self.cached.get(ACCOUNTS, req.namespace, name) if self.cached is not None else None
        if found is not None:
            return found
        attempts = DEFAULT_ATTEMPTS if name == DEFAULT else 1
        interval = random.uniform(0.1, 0.2)
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(interval)
            try:
                return await self.reader.get(ACCOUNTS, req.namespace, name)
            except APIError as exc:
                if exc.code != 404:
                    raise _forbidden(req, f"error looking up service account {req.namespace}/{name}: "
                                          f"{exc.message}") from exc
        raise _forbidden(req, f'error looking up service account {req.namespace}/{name}: '
                              f'serviceaccount "{name}" not found')


def _forbidden(req: Request, why: str) -> APIError:
    """Upstream's ``admission.NewForbidden``: the pod's name, or its generateName before it has one."""
    meta = req.obj.get("metadata") or {}
    name = req.name or meta.get("name") or meta.get("generateName") or "Unknown"
    return errors.forbidden_request(f'pods "{name}" is forbidden: {why}')


def _is_mirror(pod: Obj) -> bool:
    annotations = (pod.get("metadata") or {}).get("annotations")
    return isinstance(annotations, dict) and MIRROR in annotations


class _Pods:
    mutating: bool

    def __init__(self, reader: Reader, cached: CachedObjects | None = None) -> None:
        self.accounts = Accounts(reader, cached)

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == PODS and operation == CREATE and subresource is None


class ServiceAccount(_Pods):
    name = "ServiceAccount"
    mutating = True

    async def admit(self, req: Request) -> None:
        spec = req.obj.get("spec")
        if not isinstance(spec, dict) or _is_mirror(req.obj):
            return  # a mirror pod is the node's copy of its static pod: never changed
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT
        if not isinstance(name, str):
            return  # validation reports it
        spec["serviceAccountName"] = name
        spec["serviceAccount"] = name  # the deprecated alias, kept equal as upstream does
        account = await self.accounts.find(req, name)
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = account.get("automountServiceAccountToken")
        if automount is not False:
            _mount_token(spec)
        pull = account.get("imagePullSecrets")
        if not spec.get("imagePullSecrets") and isinstance(pull, list) and pull:
            spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in pull if isinstance(s, dict)]


class ServiceAccountCheck(_Pods):
    """Upstream's Validate half: what the mutating webhooks left must still hold."""

    name = "ServiceAccount"
    mutating = False

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == PODS and ((operation == CREATE and subresource is None)
                                or (operation == UPDATE and subresource == EPHEMERAL))

    async def admit(self, req: Request) -> None:
        spec = req.obj.get("spec")
        if not isinstance(spec, dict):
            return
        if req.subresource == EPHEMERAL:
            await self._ephemeral(req, spec)
            return
        if _is_mirror(req.obj):
            why = _mirror_refusal(spec)
            if why:
                raise _forbidden(req, why)
            return
        name = spec.get("serviceAccountName")
        if not name or not isinstance(name, str):
            raise _forbidden(req, f"no service account specified for pod {req.namespace}/{req.name}")
        account = await self.accounts.find(req, name)
        if mountablesecrets.enforced(account):
            why = mountablesecrets.refusal(account, spec)
            if why:
                raise _forbidden(req, why)

    async def _ephemeral(self, req: Request, spec: Obj) -> None:
        """Debug containers added to a running pod name no Secret its account does not list."""
        name = spec.get("serviceAccountName")
        if not name or not isinstance(name, str):
            raise _forbidden(req, f"no service account specified for pod {req.namespace}/{req.name}")
        account = await self.accounts.find(req, name)
        if mountablesecrets.enforced(account):
            why = mountablesecrets.ephemeral_refusal(account, spec)
            if why:
                raise _forbidden(req, why)


def _mirror_refusal(spec: Obj) -> str | None:
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        return "a mirror pod may not reference service accounts"
    if any(True for _ in _secret_names(spec)):
        return "a mirror pod may not reference secrets"
    for volume in spec.get("volumes") or []:
        for source in ((volume.get("projected") or {}).get("sources") or []) if isinstance(volume, dict) else []:
            if isinstance(source, dict) and source.get("serviceAccountToken") is not None:
                return "a mirror pod may not use ServiceAccountToken volume projections"
            if isinstance(source, dict) and source.get("clusterTrustBundle") is not None:
                return "a mirror pod may not use ClusterTrustBundle volume projections"
    return None


_VOLUME_SECRET_REFS = (("cephfs", "secretRef"), ("cinder", "secretRef"), ("flexVolume", "secretRef"),
                       ("rbd", "secretRef"), ("scaleIO", "secretRef"), ("iscsi", "secretRef"),
                       ("storageos", "secretRef"), ("csi", "nodePublishSecretRef"))


def _secret_names(spec: Obj) -> Iterator[str]:
    """Every Secret the pod names (upstream's ``VisitPodSecretNames``)."""
    def named(ref: Any, key: str = "name") -> Iterator[str]:
        if isinstance(ref, dict) and ref.get(key):
            yield str(ref[key])

    for ref in spec.get("imagePullSecrets") or []:
        yield from named(ref)
    for c in _containers(spec, ephemeral=True):
        for src in c.get("envFrom") or []:
            yield from named((src or {}).get("secretRef"))
        for env in c.get("env") or []:
            yield from named(((env or {}).get("valueFrom") or {}).get("secretKeyRef"))
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        yield from named(volume.get("secret"), "secretName")
        for source in (volume.get("projected") or {}).get("sources") or []:
            yield from named((source or {}).get("secret"))
        yield from named(volume.get("azureFile"), "secretName")
        for kind, field in _VOLUME_SECRET_REFS:
            ref = volume.get(kind)
            if isinstance(ref, dict):
                yield from named(ref.get(field))


def _containers(spec: Obj, ephemeral: bool = False) -> list[Obj]:
    fields = ("initContainers", "containers", *(("ephemeralContainers",) if ephemeral else ()))
    return [c for field in fields for c in spec.get(field) or [] if isinstance(c, dict)]


def _mount_token(spec: Obj) -> None:
    containers = _containers(spec)
    if any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH
           for c in containers for m in c.get("volumeMounts") or []):
        return  # the pod mounts something of its own there
    volume = f"kube-api-access-{random_suffix(_SUFFIX, 5)}"
    volumes = spec.get("volumes")
    spec["volumes"] = [*(volumes if isinstance(volumes, list) else []), token_volume(volume)]
    for c in containers:
        mounts = c.get("volumeMounts")
        c["volumeMounts"] = [*(mounts if isinstance(mounts, list) else []),
                             {"name": volume, "readOnly": True, "mountPath": MOUNT_PATH}]
