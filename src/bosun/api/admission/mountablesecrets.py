"""Upstream's ``kubernetes.io/enforce-mountable-secrets`` rule: a pod whose account carries the
annotation (``"true"``, or anything Go's ``ParseBool`` reads as true) may use only the Secrets
the account lists.

What is checked is what upstream's ServiceAccount plugin checks, in its order, with its
messages: ``secret`` volumes, then each init container's and container's ``env``
``secretKeyRef`` and ``envFrom`` ``secretRef`` against the account's ``secrets``, then the pod's
``imagePullSecrets`` against the account's ``imagePullSecrets``. Ephemeral containers are
checked when they are added (the ``ephemeralcontainers`` subresource). Upstream does not look
into ``projected`` volumes' Secret sources or the other volume plugins' secret references, and
neither does this.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]
ANNOTATION = "kubernetes.io/enforce-mountable-secrets"
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool


def enforced(account: Obj) -> bool:
    annotations = (account.get("metadata") or {}).get("annotations")
    return isinstance(annotations, dict) and annotations.get(ANNOTATION) in _TRUE


def _names(refs: Any) -> set[str]:
    return {str(r.get("name")) for r in refs or [] if isinstance(r, dict) and r.get("name")}


def _dicts(raw: Any) -> list[Obj]:
    return [x for x in raw or [] if isinstance(x, dict)] if isinstance(raw, list) else []


def _containers(what: str, containers: Iterable[Obj], allowed: set[str], account: str) -> str | None:
    tail = f"is not allowed because service account {account} does not reference that secret"
    for c in containers:
        name = c.get("name")
        for env in _dicts(c.get("env")):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if isinstance(ref, dict) and str(ref.get("name") or "") not in allowed:
                return (f'{what} {name} with envVar {env.get("name")} referencing '
                        f'secret.secretName="{ref.get("name") or ""}" {tail}')
        for source in _dicts(c.get("envFrom")):
            ref = source.get("secretRef")
            if isinstance(ref, dict) and str(ref.get("name") or "") not in allowed:
                return f'{what} {name} with envFrom referencing secret.secretName="{ref.get("name") or ""}" {tail}'
    return None


def refusal(account: Obj, spec: Obj) -> str | None:
    """Why a new pod's ``spec`` may not run as ``account`` (None: it may)."""
    allowed = _names(account.get("secrets"))
    name = (account.get("metadata") or {}).get("name")
    for volume in _dicts(spec.get("volumes")):
        secret = volume.get("secret")
        if isinstance(secret, dict) and str(secret.get("secretName") or "") not in allowed:
            return (f'volume with secret.secretName="{secret.get("secretName") or ""}" is not allowed because '
                    f"service account {name} does not reference that secret")
    why = (_containers("init container", _dicts(spec.get("initContainers")), allowed, str(name))
           or _containers("container", _dicts(spec.get("containers")), allowed, str(name)))
    if why:
        return why
    pulls = _names(account.get("imagePullSecrets"))
    for i, ref in enumerate(_dicts(spec.get("imagePullSecrets"))):
        if str(ref.get("name") or "") not in pulls:
            return (f'imagePullSecrets[{i}].name="{ref.get("name") or ""}" is not allowed because '
                    f"service account {name} does not reference that imagePullSecret")
    return None


def ephemeral_refusal(account: Obj, spec: Obj) -> str | None:
    """Why the pod's ephemeral containers may not run as ``account`` (None: they may)."""
    allowed = _names(account.get("secrets"))
    name = str((account.get("metadata") or {}).get("name"))
    return _containers("ephemeral container", _dicts(spec.get("ephemeralContainers")), allowed, name)
