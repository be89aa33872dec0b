"""``docker service create`` flags as a compose service, so a service made from the command
line goes through the same schema, translation and warnings as one from a file."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Any

from bosun.compose.errors import ComposeError

JSON = dict[str, Any]


def key_values(text: str, what: str) -> dict[str, str]:
    """``type=volume,src=data,dst=/data,readonly`` (CSV, as Docker parses it)."""
    out: dict[str, str] = {}
    for item in next(csv.reader([text])):
        key, eq, value = item.partition("=")
        if not key.strip():
            raise ComposeError(f"invalid {what} {text!r}")
        out[key.strip().lower()] = value.strip() if eq else "true"
    return out


def publish(text: str) -> JSON | str:
    """``8080:80[/udp]`` stays short syntax; ``published=8080,target=80,mode=host`` is long."""
    if "=" not in text:
        return text
    kv = key_values(text, "--publish")
    if "target" not in kv:
        raise ComposeError(f"invalid --publish {text!r}: target= is required")
    out: JSON = {"target": int(kv["target"]), "protocol": kv.get("protocol", "tcp"), "mode": kv.get("mode", "ingress")}
    if kv.get("published"):
        out["published"] = kv["published"]
    return out


_MOUNT_KEYS = {"src": "source", "source": "source", "dst": "target", "destination": "target", "target": "target"}


def mount(text: str) -> JSON:
    kv = key_values(text, "--mount")
    out: JSON = {"type": kv.get("type", "volume")}
    for key, value in kv.items():
        if key in _MOUNT_KEYS:
            out[_MOUNT_KEYS[key]] = value
        elif key in ("readonly", "ro"):
            out["read_only"] = value.lower() in ("true", "1", "")
        elif key == "tmpfs-size":
            out.setdefault("tmpfs", {})["size"] = value
        elif key != "type":
            raise ComposeError(f"invalid --mount {text!r}: unknown option {key!r}")
    if "target" not in out:
        raise ComposeError(f"invalid --mount {text!r}: dst= is required")
    return out


def file_ref(text: str, what: str) -> JSON:
    if "=" not in text:
        return {"source": text}
    kv = key_values(text, what)
    out: JSON = {"source": kv.get("source") or kv.get("src", "")}
    if kv.get("target"):
        out["target"] = kv["target"]
    if kv.get("mode"):
        out["mode"] = int(kv["mode"], 8)
    return out


@dataclass(slots=True)
class ServiceFlags:
    """Everything ``service create`` accepts, before it becomes a compose service."""

    name: str
    image: str
    args: list[str] = field(default_factory=list)
    replicas: int | None = None
    mode: str = "replicated"
    publish: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    env_file: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    container_labels: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    placement_prefs: list[str] = field(default_factory=list)
    max_per_node: int | None = None
    max_concurrent: int | None = None
    mounts: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    update: JSON = field(default_factory=dict)
    rollback: JSON = field(default_factory=dict)
    restart: JSON = field(default_factory=dict)
    limits: JSON = field(default_factory=dict)
    reservations: JSON = field(default_factory=dict)
    health: JSON = field(default_factory=dict)
    no_healthcheck: bool = False
    endpoint_mode: str = ""
    hostname: str = ""
    user: str = ""
    workdir: str = ""
    entrypoint: str = ""
    stop_grace_period: str = ""
    ingress_host: str = ""  # an Ingress rule for the service (x-bosun-ingress)
    ingress_path: str = ""


def _pref(text: str) -> JSON:
    kind, _, value = text.partition("=")
    if kind != "spread" or not value:
        raise ComposeError(f"invalid --placement-pref {text!r}: want spread=node.labels.KEY")
    return {"spread": value}


def to_model(f: ServiceFlags) -> JSON:
    """The compose model (one service, plus its external secrets, configs and networks)."""
    svc: JSON = {"image": f.image}
    if f.args:
        svc["command"] = list(f.args)
    if f.entrypoint:
        svc["entrypoint"] = f.entrypoint
    if f.env:
        svc["environment"] = list(f.env)
    if f.env_file:
        svc["env_file"] = list(f.env_file)
    if f.container_labels:
        svc["labels"] = list(f.container_labels)
    if f.publish:
        svc["ports"] = [publish(p) for p in f.publish]
    if f.mounts:
        svc["volumes"] = [mount(m) for m in f.mounts]
    for attr, key in (("hostname", "hostname"), ("user", "user"), ("workdir", "working_dir"),
                      ("stop_grace_period", "stop_grace_period")):
        if getattr(f, attr):
            svc[key] = getattr(f, attr)
    deploy: JSON = {"mode": f.mode}
    if f.replicas is not None:
        if f.replicas < 0:
            raise ComposeError(f"invalid --replicas {f.replicas}: it must be 0 or more")
        deploy["replicas"] = f.replicas
    if f.labels:
        deploy["labels"] = list(f.labels)
    if f.max_concurrent is not None:
        if f.mode != "replicated-job":
            raise ComposeError("--max-concurrent can only be used with replicated-job mode")
        deploy["x-max-concurrent"] = f.max_concurrent
    placement: JSON = {}
    if f.constraints:
        placement["constraints"] = list(f.constraints)
    if f.placement_prefs:
        placement["preferences"] = [_pref(p) for p in f.placement_prefs]
    if f.max_per_node is not None:
        placement["max_replicas_per_node"] = f.max_per_node
    if placement:
        deploy["placement"] = placement
    for key, value in (("update_config", f.update), ("rollback_config", f.rollback),
                       ("restart_policy", f.restart)):
        if value:
            deploy[key] = dict(value)
    resources = {k: v for k, v in (("limits", f.limits), ("reservations", f.reservations)) if v}
    if resources:
        deploy["resources"] = resources
    if f.endpoint_mode:
        deploy["endpoint_mode"] = f.endpoint_mode
    svc["deploy"] = deploy
    if f.ingress_host:
        svc["x-bosun-ingress"] = {"host": f.ingress_host, "path": f.ingress_path or "/"}
    elif f.ingress_path:
        raise ComposeError("--ingress-path needs --ingress-host")
    if f.no_healthcheck:
        svc["healthcheck"] = {"disable": True}
    elif f.health:
        svc["healthcheck"] = dict(f.health)
    model: JSON = {"services": {f.name: svc}}
    named = [m["source"] for m in svc.get("volumes") or [] if m.get("type") == "volume" and m.get("source")]
    if named:
        model["volumes"] = {n: {} for n in named}
    for word, refs in (("secrets", f.secrets), ("configs", f.configs)):
        if refs:
            parsed = [file_ref(r, f"--{word[:-1]}") for r in refs]
            svc[word] = parsed
            model[word] = {r["source"]: {"external": True} for r in parsed}
    if f.networks:
        svc["networks"] = list(f.networks)
        model["networks"] = {n: {"external": True} for n in f.networks}
    return model
