"""Configs and secrets: each becomes a ConfigMap or Secret of the stack whose name carries a
hash of its content, mounted where Compose mounts it (``/<name>`` for configs,
``/run/secrets/<name>`` for secrets). A changed file gets a new name, so the services that
use it roll to it (Docker refuses to update them in place). An external one is used by its
name and must hold its file under the key ``content``."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from bosun.compose.errors import ComposeError
from bosun.compose.translate.context import JSON, Service, Stack, dns_name

CONTENT_KEY = "content"


@dataclass(frozen=True, slots=True)
class FileKind:
    """What differs between configs and secrets: the word, the kind, the default path."""

    word: str  # "configs" / "secrets"
    kind: str  # "ConfigMap" / "Secret"
    default_dir: str  # "" -> /<name>, "/run/secrets" -> /run/secrets/<name>

    def target(self, source: str, target: str | None) -> str:
        if target and target.startswith("/"):
            return target
        return f"{self.default_dir}/{target or source}"


CONFIGS = FileKind("configs", "ConfigMap", "")
SECRETS = FileKind("secrets", "Secret", "/run/secrets")


def _content(stack: Stack, kind: FileKind, name: str, spec: JSON) -> bytes:
    where = f"{kind.word}.{name}"
    if "file" in spec:
        path = Path(str(spec["file"])).expanduser()
        path = path if path.is_absolute() else stack.project.directory / path
        try:
            return path.read_bytes()
        except OSError as e:
            raise ComposeError(f"{where}.file: cannot read {path}: {e.strerror or e}") from None
    if "content" in spec:
        return str(spec["content"]).encode()
    if "environment" in spec:
        var = str(spec["environment"])
        if var not in stack.project.environment:
            raise ComposeError(f'{where}.environment: environment variable "{var}" is not set')
        return stack.project.environment[var].encode()
    raise ComposeError(f"{where}: one of file, content or environment is required")


def stack_objects(stack: Stack, kind: FileKind, names: dict[str, str]) -> list[JSON]:
    """The stack's ConfigMaps or Secrets; fills ``names`` (compose name -> object name)."""
    out: list[JSON] = []
    for name, spec in stack.project.top(kind.word).items():
        if spec.get("external"):
            names[name] = dns_name(str(spec.get("name") or name))
            continue
        data = _content(stack, kind, name, spec)
        digest = hashlib.sha256(data).hexdigest()[:10]
        obj_name = f"{dns_name(str(spec.get('name') or name))[:52]}-{digest}"
        names[name] = obj_name
        meta = {"name": obj_name, "namespace": stack.name,
                "labels": {**stack.labels(), f"bosun.io/{kind.word[:-1]}": dns_name(name)}}
        if kind.kind == "Secret":
            out.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                        "data": {CONTENT_KEY: base64.b64encode(data).decode()}})
        else:
            text = data.decode("utf-8", "surrogateescape")
            try:
                data.decode("utf-8")
                body: JSON = {"data": {CONTENT_KEY: text}}
            except UnicodeDecodeError:
                body = {"binaryData": {CONTENT_KEY: base64.b64encode(data).decode()}}
            out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, **body})
        for key in ("driver", "template_driver", "labels"):
            if spec.get(key):
                stack.warnings.add(f"{kind.word}.{name}", key, "not supported; ignored")
    return out


class Files:
    """Mounts a service's configs and secrets (the objects are made once per stack)."""

    fields = frozenset({"configs", "secrets"})

    def apply(self, svc: Service) -> list[JSON]:
        for kind, names in ((CONFIGS, svc.stack.config_names), (SECRETS, svc.stack.secret_names)):
            for ref in svc.spec.get(kind.word) or []:
                source = str(ref["source"])
                vol_name = f"{kind.word[:-1]}-{dns_name(source)}"[:63].rstrip("-")
                ref_key = "secret" if kind.kind == "Secret" else "configMap"
                name_key = "secretName" if kind.kind == "Secret" else "name"
                item: JSON = {"key": CONTENT_KEY, "path": "file"}
                if ref.get("mode") is not None:
                    item["mode"] = int(str(ref["mode"]), 8) if isinstance(ref["mode"], str) else int(ref["mode"])
                for unsupported in ("uid", "gid"):
                    if ref.get(unsupported) is not None:
                        svc.warn(f"{kind.word}.{source}.{unsupported}", "not supported; files are owned by root")
                volume = {"name": vol_name, ref_key: {name_key: names[source], "items": [item],
                                                      "defaultMode": 0o444}}
                vols = svc.pod.setdefault("volumes", [])
                if not any(v["name"] == vol_name for v in vols):
                    vols.append(volume)
                svc.container.setdefault("volumeMounts", []).append(
                    {"name": vol_name, "mountPath": kind.target(source, ref.get("target")), "subPath": "file",
                     "readOnly": True})
        return []
