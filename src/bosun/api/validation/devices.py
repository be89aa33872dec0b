"""Bosun's request for host devices: the annotation ``devices.bosun.io/<container name>`` on
a pod (or pod template), a comma separated list in Docker's ``HOST[:CONTAINER][:PERMISSIONS]``
syntax (``/dev/fuse,/dev/sda:/dev/xvda:r``). Kubernetes has no pod field for it (device
plugins and DRA hand devices out); Compose's ``devices:`` becomes this annotation.

The syntax is checked here when the object is written (a Status error naming the annotation);
whether the device exists is the node's to say when it starts the container.
"""

from __future__ import annotations

from typing import Any

from bosun.api.errors import invalid
from bosun.api.validation.fields import Checker, key

DEVICES_ANNOTATION = "devices.bosun.io/"


def parse_device(text: str) -> tuple[str, str, str]:
    """(host path, container path, permissions); ValueError says what is wrong."""
    text = text.strip()
    parts = text.split(":")
    if not parts[0].startswith("/") or len(parts) > 3:
        raise ValueError(f"device {text!r}: expected HOST[:CONTAINER][:PERMISSIONS] with absolute paths")
    target, perms = parts[0], "rwm"
    if len(parts) == 2:
        if parts[1].startswith("/"):
            target = parts[1]
        else:
            perms = parts[1]
    elif len(parts) == 3:
        target, perms = parts[1], parts[2]
    if not target.startswith("/"):
        raise ValueError(f"device {text!r}: the container path {target!r} must be absolute")
    if not perms or set(perms) - set("rwm"):
        raise ValueError(f"device {text!r}: permissions {perms!r} must be made of r, w and m")
    return parts[0], target, perms


def parse_devices(text: str) -> list[tuple[str, str, str]]:
    return [parse_device(part) for part in text.split(",") if part.strip()]


def validate_device_annotations(c: Checker, meta: Any, spec: Any, path: str) -> None:
    """``path``: where the object's metadata is (``metadata``, ``spec.template.metadata``)."""
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(annotations, dict):
        return
    names = {str(x.get("name")) for group in ("containers", "initContainers")
             for x in (spec.get(group) if isinstance(spec, dict) else None) or [] if isinstance(x, dict)}
    for k, v in annotations.items():
        if not str(k).startswith(DEVICES_ANNOTATION):
            continue
        field = key(f"{path}.annotations", str(k))
        container = str(k)[len(DEVICES_ANNOTATION):]
        if container not in names:
            c.add(invalid(field, v, f"names no container of the pod ({container!r})"))
            continue
        try:
            parse_devices(str(v))
        except ValueError as e:
            c.add(invalid(field, v, str(e)))
