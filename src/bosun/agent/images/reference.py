"""Image names as Docker spells them (``busybox``, ``localhost:5000/x/y:1``, ``...@sha256:``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class InvalidReference(ValueError):
    pass


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str = "latest"
    digest: str = ""

    @property
    def name(self) -> str:
        """Canonical name without tag or digest (``docker.io/library/busybox``)."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}"

    @property
    def api_host(self) -> str:
        """Where the registry API lives (Docker Hub's API host differs from its name)."""
        return "registry-1.docker.io" if self.registry == DEFAULT_REGISTRY else self.registry


def parse(image: str) -> Reference:
    """Normalize like the docker CLI: a first component with '.' or ':' (or ``localhost``)
    is a registry; Docker Hub names without a slash live under ``library/``."""
    s = image.strip()
    if not s:
        raise InvalidReference("empty image name")
    digest = ""
    if "@" in s:
        s, digest = s.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReference(f"invalid digest in image name {image!r}")
    tag = ""
    last = s.rsplit("/", 1)[-1]
    if ":" in last:
        s, tag = s.rsplit(":", 1)
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid tag in image name {image!r}")
    first, _, rest = s.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repo = first, rest
    else:
        registry, repo = DEFAULT_REGISTRY, s
    if registry == DEFAULT_REGISTRY and "/" not in repo:
        repo = "library/" + repo
    if not _NAME.match(repo):
        raise InvalidReference(f"invalid image name {image!r}: repository names must be lowercase")
    return Reference(registry=registry, repository=repo, tag=tag or ("" if digest else "latest"), digest=digest)
