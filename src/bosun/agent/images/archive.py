"""``bosun image import FILE.tar``: docker-archive (``docker save``) and OCI image layouts.

Both formats end up as the same thing in the store: a config blob, layers unpacked and
verified against the config's diff ids, and names. A ``docker save`` of a recent Docker
holds both a ``manifest.json`` and an OCI ``index.json``; the former is preferred because
it carries the full repository tags.
"""

from __future__ import annotations

import json
import platform
import tarfile
from typing import IO, Any

from bosun.agent.images.reference import InvalidReference, parse
from bosun.agent.images.store import ImageRecord, ImageStore, ImageStoreError

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")


def host_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


def pick_platform(manifests: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The entry of an index for this machine (linux/<arch>), or the only one there is."""
    arch = host_arch()
    for m in manifests:
        p = m.get("platform") or {}
        if p.get("os", "linux") == "linux" and p.get("architecture") == arch:
            return m
    plain = [m for m in manifests if not m.get("platform")]
    return plain[0] if plain else None


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    name = name.lstrip("./") if name.startswith("./") else name
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise ImageStoreError(f"archive is missing {name!r}")
    return f


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    return _member(tar, name).read()


def _blob_name(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    return f"blobs/{algo}/{hexd}"


def _import_image(store: ImageStore, tar: tarfile.TarFile, config_bytes: bytes, layer_names: list[str],
                  names: list[str], manifest: str = "") -> list[ImageRecord]:
    config_digest = store.put_blob(config_bytes)
    config = json.loads(config_bytes)
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    if len(diff_ids) != len(layer_names):
        raise ImageStoreError(f"image config lists {len(diff_ids)} layers but the archive has {len(layer_names)}")
    for diff_id, lname in zip(diff_ids, layer_names, strict=True):
        if not store.has_layer(diff_id):
            store.add_layer(_member(tar, lname), diff_id)
    return [store.tag(n, config_digest, diff_ids, manifest) for n in (names or [config_digest])]


def import_archive(store: ImageStore, path: str, name: str | None = None) -> list[ImageRecord]:
    """Import every image of the archive; ``name`` names an image the archive leaves unnamed
    (or renames the only one)."""
    try:
        tar = tarfile.open(path)
    except (OSError, tarfile.TarError) as e:
        raise ImageStoreError(f"{path}: not a readable tar archive ({e})") from e
    with tar:
        members = set(tar.getnames())
        members |= {m[2:] for m in members if m.startswith("./")}
        if "manifest.json" in members:
            out: list[ImageRecord] = []
            entries = json.loads(_read(tar, "manifest.json"))
            for entry in entries:
                tags = [name] if name else list(entry.get("RepoTags") or [])
                out += _import_image(store, tar, _read(tar, entry["Config"]), list(entry["Layers"]), tags)
            return out
        if "index.json" in members:
            return _import_oci(store, tar, name)
    raise ImageStoreError(f"{path}: neither a docker archive (manifest.json) nor an OCI layout (index.json)")


def _ref_name(annotations: dict[str, str], name: str | None) -> list[str]:
    if name:
        return [name]
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        value = annotations.get(key)
        if value:
            try:
                parse(value)
            except InvalidReference:
                continue
            if key == "org.opencontainers.image.ref.name" and "/" not in value and ":" not in value:
                continue  # just a tag: not a name on its own
            return [value]
    return []


def _import_oci(store: ImageStore, tar: tarfile.TarFile, name: str | None) -> list[ImageRecord]:
    index = json.loads(_read(tar, "index.json"))
    out: list[ImageRecord] = []
    for desc in index.get("manifests") or []:
        names = _ref_name(desc.get("annotations") or {}, name)
        if desc.get("mediaType") in INDEX_TYPES:
            nested = json.loads(_read(tar, _blob_name(desc["digest"])))
            chosen = pick_platform(nested.get("manifests") or [])
            if chosen is None:
                raise ImageStoreError(f"no linux/{host_arch()} image in the archive's index")
            desc = chosen
        manifest_bytes = _read(tar, _blob_name(desc["digest"]))
        manifest = json.loads(manifest_bytes)
        store.put_blob(manifest_bytes, desc["digest"])
        cfg = _read(tar, _blob_name(manifest["config"]["digest"]))
        layers = [_blob_name(layer["digest"]) for layer in manifest.get("layers") or []]
        out += _import_image(store, tar, cfg, layers, names, desc["digest"])
    return out
