"""Read and write kubeconfig files, the one credential format kubectl and every client share.

Bosun writes the same file kubectl reads, so a user can point kubectl, the ``kubernetes``
Python client and Bosun's own components at the cluster with one file and no extra setup.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MANAGERS_EXTENSION = "bosun.io/managers"


class KubeconfigError(ValueError):
    """The kubeconfig is missing, unreadable or does not describe a usable cluster."""


@dataclass(slots=True)
class ClusterConfig:
    """Everything needed to reach one API server as one user."""

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = None
    namespace: str = "default"
    # More servers of the same cluster (a swarm's other managers), tried when ``server`` does
    # not answer; kept in the cluster's ``bosun.io/managers`` extension, which kubectl ignores.
    servers: list[str] = field(default_factory=list)


def default_path() -> str:
    """$KUBECONFIG (first entry when it lists several), else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG")
    if env:
        first = next((p for p in env.split(os.pathsep) if p), "")
        if first:
            return first
    return str(Path.home() / ".kube" / "config")


def _named(entries: Any, name: str, what: str, path: str) -> dict[str, Any]:
    if not isinstance(entries, list):
        raise KubeconfigError(f"{path}: no {what}s defined")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(what)
            return body if isinstance(body, dict) else {}
    raise KubeconfigError(f"{path}: {what} {name!r} not found")


def _read_data(section: dict[str, Any], data_key: str, file_key: str, base: Path, path: str) -> bytes | None:
    """Inline base64 ``*-data`` wins over a file path, as in kubectl; paths are relative to the file."""
    data = section.get(data_key)
    if data:
        try:
            return base64.b64decode(data, validate=True)
        except ValueError as e:
            raise KubeconfigError(f"{path}: {data_key} is not valid base64") from e
    file_name = section.get(file_key)
    if file_name:
        file_path = base / os.path.expanduser(str(file_name))
        try:
            return file_path.read_bytes()
        except OSError as e:
            raise KubeconfigError(f"{path}: cannot read {file_key} {file_path}: {e.strerror}") from e
    return None


def load_kubeconfig(path: str | None = None, context: str | None = None) -> ClusterConfig:
    """Resolve one context of a kubeconfig into a :class:`ClusterConfig`."""
    path = path or default_path()
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {e.strerror}") from e
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "syntax error"
        raise KubeconfigError(f"{path}: not valid YAML{where}: {problem}") from e
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{path}: not a kubeconfig (expected a mapping)")

    context_name = context or doc.get("current-context")
    if not context_name:
        raise KubeconfigError(f"{path}: no current-context set and no context given")
    ctx = _named(doc.get("contexts"), str(context_name), "context", path)
    cluster_name = ctx.get("cluster")
    if not cluster_name:
        raise KubeconfigError(f"{path}: context {context_name!r} names no cluster")
    cluster = _named(doc.get("clusters"), str(cluster_name), "cluster", path)
    user_name = ctx.get("user")
    user = _named(doc.get("users"), str(user_name), "user", path) if user_name else {}

    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"{path}: cluster {cluster_name!r} has no server")
    base = Path(path).resolve().parent

    token = user.get("token")
    token_file = user.get("tokenFile") or user.get("token-file")
    if not token and token_file:
        try:
            token = (base / os.path.expanduser(str(token_file))).read_text().strip()
        except OSError as e:
            raise KubeconfigError(f"{path}: cannot read tokenFile {token_file}: {e.strerror}") from e

    return ClusterConfig(
        server=str(server).rstrip("/"),
        ca_data=_read_data(cluster, "certificate-authority-data", "certificate-authority", base, path),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=str(token) if token else None,
        client_cert=_read_data(user, "client-certificate-data", "client-certificate", base, path),
        client_key=_read_data(user, "client-key-data", "client-key", base, path),
        namespace=str(ctx.get("namespace") or "default"),
        servers=_other_servers(cluster, str(server).rstrip("/")),
    )


def _other_servers(cluster: dict[str, Any], server: str) -> list[str]:
    for ext in cluster.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == MANAGERS_EXTENSION:
            body = ext.get("extension")
            urls = body.get("servers") if isinstance(body, dict) else None
            return [str(u).rstrip("/") for u in urls or [] if str(u).rstrip("/") != server]
    return []


def write_kubeconfig(
    path: str,
    *,
    server: str,
    ca_pem: bytes,
    token: str,
    cluster_name: str = "bosun",
    user: str = "admin",
    servers: list[str] | None = None,
) -> None:
    """Write a single-context kubeconfig; mode 0600 because it holds a bearer token.
    ``servers``: the cluster's other API servers (see :attr:`ClusterConfig.servers`)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
    }
    if servers:
        cluster_entry: dict[str, Any] = doc["clusters"][0]["cluster"]  # type: ignore[index]
        cluster_entry["extensions"] = [{"name": MANAGERS_EXTENSION, "extension": {"servers": list(servers)}}]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, default_flow_style=False, sort_keys=False)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
