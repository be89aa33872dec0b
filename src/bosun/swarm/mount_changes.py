"""``service update``'s ``--mount-add/-rm``, ``--secret-add/-rm`` and ``--config-add/-rm``.

What is added is translated as ``service create`` translates it (a one-service compose
model through :func:`bosun.compose.translate.translate`), so an added mount, secret or config
is exactly the volume and mount create would have made; those are grafted into the live pod
template. A named volume also brings its PersistentVolumeClaim, which the caller writes.
What is removed is found by the mount's target (``--mount-rm /data``, as Docker) or by the
secret's or config's name, and a volume no longer mounted goes with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bosun.compose.load import from_model
from bosun.compose.translate import translate
from bosun.compose.translate.context import dns_name
from bosun.swarm.flags import ServiceFlags, to_model

JSON = dict[str, Any]


@dataclass
class Added:
    volumes: list[JSON] = field(default_factory=list)
    mounts: list[JSON] = field(default_factory=list)
    claims: list[JSON] = field(default_factory=list)  # PersistentVolumeClaims of named volumes


def translate_added(name: str, namespace: str, mounts: list[str], secrets: list[str], configs: list[str]) -> Added:
    """The volumes and mounts create would make of these flags (raises ComposeError)."""
    if not (mounts or secrets or configs):
        return Added()
    flags = ServiceFlags(name=name, image="busybox", mounts=mounts, secrets=secrets, configs=configs)
    t = translate(from_model(to_model(flags), Path.cwd(), dict(os.environ), "service update"), namespace, 1,
                  standalone=True)
    objects = t.all_objects()
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    return Added(list(pod.get("volumes") or []), list(pod["containers"][0].get("volumeMounts") or []),
                 [o for o in objects if o["kind"] == "PersistentVolumeClaim"])


def file_volume(word: str, name: str) -> str:
    """The volume create names after a secret's or config's source (bosun.compose.translate.files)."""
    return f"{word}-{dns_name(name)}"[:63].rstrip("-")


def remove(pod: JSON, container: JSON, targets: set[str], volumes: set[str]) -> None:
    """Unmount ``targets`` (mount paths) and ``volumes`` (volume names); drop a volume that was
    mounted here and no longer is anywhere in the pod."""
    before = list(container.get("volumeMounts") or [])
    container["volumeMounts"] = [m for m in before if m["mountPath"] not in targets and m["name"] not in volumes]
    _tidy(pod, container, before)


def add(pod: JSON, container: JSON, added: Added) -> None:
    """Graft ``added``: a volume of the same name, or a mount at the same path, is replaced."""
    names = {v["name"] for v in added.volumes}
    pod["volumes"] = [v for v in pod.get("volumes") or [] if v["name"] not in names] + added.volumes
    paths = {m["mountPath"] for m in added.mounts}
    before = list(container.get("volumeMounts") or [])
    container["volumeMounts"] = [m for m in before if m["mountPath"] not in paths] + added.mounts
    _tidy(pod, container, before)


def _tidy(pod: JSON, container: JSON, before: list[JSON]) -> None:
    """Drop the volumes that ``before`` mounted and nothing in the pod mounts any more."""
    used = {m["name"] for c in pod.get("containers") or [] for m in c.get("volumeMounts") or []}
    unmounted = {m["name"] for m in before} - used
    pod["volumes"] = [v for v in pod.get("volumes") or [] if v["name"] not in unmounted]
    if not pod.get("volumes"):
        pod.pop("volumes", None)
    if not container.get("volumeMounts"):
        container.pop("volumeMounts", None)
