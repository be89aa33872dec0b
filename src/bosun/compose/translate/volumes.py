"""Mounts: named volumes as PersistentVolumeClaims of the stack, bind mounts as hostPath,
tmpfs (long syntax or the ``tmpfs`` key) as memory-backed emptyDir."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bosun.compose import normalize, units
from bosun.compose.translate.context import JSON, Service, dns_name, split_labels

DEFAULT_SIZE = "1Gi"


def volume_name(kind: str, text: str) -> str:
    """A pod volume name: readable, and unique per source (two binds of one dir share it)."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{kind}-{dns_name(text)[:40].strip('-')}-{digest}".replace("--", "-")


def claim(svc: Service, name: str) -> JSON | None:
    """The PVC of a named volume; None when it is external (it must exist already) or another
    service of the stack already brought it (one claim per volume, written with its first user)."""
    spec = svc.stack.project.top("volumes").get(name) or {}
    if spec.get("external") or claim_name(svc, name) in svc.stack.claims:
        return None
    svc.stack.claims.add(claim_name(svc, name))
    opts = dict(spec.get("driver_opts") or {})
    size = str(opts.pop("size", DEFAULT_SIZE))
    where = f"volumes.{name}"
    if spec.get("driver") not in (None, "local"):
        svc.stack.warnings.add(where, "driver", f"{spec['driver']!r} is not supported; node-local storage is used")
    for key in opts:
        svc.stack.warnings.add(where, f"driver_opts.{key}", "not supported; ignored")
    labels, annotations = split_labels(normalize.list_or_dict(spec.get("labels")))
    meta: JSON = {"name": claim_name(svc, name), "namespace": svc.stack.name,
                  "labels": {**labels, **svc.stack.labels()}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}


def claim_name(svc: Service, name: str) -> str:
    spec = svc.stack.project.top("volumes").get(name) or {}
    return dns_name(str(spec.get("name") or name))


class Volumes:
    fields = frozenset({"volumes", "tmpfs"})

    def apply(self, svc: Service) -> list[JSON]:
        objects: list[JSON] = []
        volumes: list[JSON] = svc.pod.setdefault("volumes", [])
        mounts: list[JSON] = svc.container.setdefault("volumeMounts", [])
        for i, m in enumerate(normalize.volumes(svc.spec.get("volumes"), svc.where)):
            kind, target = m.get("type", "volume"), str(m["target"])
            field_ = f"volumes[{i}]"
            if kind == "volume" and m.get("source"):
                vol: JSON = {"name": volume_name("data", str(m["source"])),
                       "persistentVolumeClaim": {"claimName": claim_name(svc, str(m["source"]))}}
                pvc = claim(svc, str(m["source"]))
                if pvc is not None:
                    objects.append(pvc)
            elif kind == "volume":
                vol = {"name": volume_name("anon", target), "emptyDir": {}}
            elif kind == "bind":
                source = Path(str(m["source"])).expanduser()
                source = source if source.is_absolute() else (svc.stack.project.directory / source).resolve()
                vol = {"name": volume_name("bind", str(source)), "hostPath": {"path": str(source)}}
                if (m.get("bind") or {}).get("create_host_path") is False:
                    vol["hostPath"]["type"] = "Directory"
            elif kind == "tmpfs":
                vol = {"name": volume_name("tmpfs", target), "emptyDir": {"medium": "Memory"}}
                size = (m.get("tmpfs") or {}).get("size")
                if size is not None:
                    vol["emptyDir"]["sizeLimit"] = str(units.size_bytes(size, f"{svc.where}.{field_}.tmpfs.size"))
            else:
                svc.warn(f"{field_}.type", f"{kind!r} mounts are not supported; {target} is not mounted")
                continue
            if m.get("consistency"):
                svc.warn(f"{field_}.consistency", "not supported; ignored")
            if (m.get("volume") or {}).get("nocopy"):
                svc.warn(f"{field_}.volume.nocopy", "not supported: a new volume starts empty")
            if not any(v["name"] == vol["name"] for v in volumes):
                volumes.append(vol)
            mount: JSON = {"name": vol["name"], "mountPath": target}
            if m.get("read_only"):
                mount["readOnly"] = True
            mounts.append(mount)
        tmpfs = svc.spec.get("tmpfs")
        for target in [tmpfs] if isinstance(tmpfs, str) else tmpfs or []:
            path = str(target).split(":", 1)[0]
            name = volume_name("tmpfs", path)
            volumes.append({"name": name, "emptyDir": {"medium": "Memory"}})
            mounts.append({"name": name, "mountPath": path})
        return objects
