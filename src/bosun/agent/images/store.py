"""The node's image store: blobs by digest, layers unpacked once, and names pointing at them.

Layout under the store root::

    blobs/sha256/<hex>      configs and manifests (layer blobs are not kept once unpacked)
    layers/<diff id hex>/   one unpacked layer, overlayfs-ready (whiteouts converted)
    refs.json               {"<canonical name>": {"id", "manifest", "layers": [diff ids]}}

Layers are keyed by their diff id (digest of the uncompressed tar), so two images sharing a
base share its directory, and a layer is verified while it is unpacked. Docker's ``.wh.``
whiteouts become what overlayfs understands (a 0/0 character device, or the ``opaque``
xattr on a directory), so an image's lower dirs are simply stacked by overlayfs.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bosun.agent.images.reference import InvalidReference, parse

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


class ImageStoreError(Exception):
    pass


@dataclass
class ImageRecord:
    name: str
    id: str  # config digest
    layers: list[str]  # diff ids, bottom first
    manifest: str = ""
    config: dict[str, Any] = field(default_factory=dict)


def canonical(name: str) -> str:
    try:
        return str(parse(name))
    except InvalidReference:
        return name


class _HashingReader(io.RawIOBase):
    """Hashes what passes through, so a layer is verified while it is unpacked."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.sha.update(data)
        return n

    def drain(self) -> None:
        while self.raw.read(1 << 20):
            pass


def _decompressed(f: IO[bytes]) -> IO[bytes]:
    buf: Any = f if isinstance(f, io.BufferedReader) else io.BufferedReader(f, 1 << 16)  # type: ignore[arg-type,type-var]
    head = buf.peek(4)[:4]
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buf)  # type: ignore[return-value]
    if head == b"\x28\xb5\x2f\xfd":
        raise ImageStoreError("zstd-compressed layers are not supported; use gzip or uncompressed layers")
    return buf


def _safe_name(name: str) -> str | None:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ImageStoreError(f"layer entry {name!r} escapes the layer")
    return "/".join(parts) or None


def _inside(root: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def unpack_layer(stream: IO[bytes], dest: Path) -> str:
    """Unpack one (optionally gzipped) layer tar into ``dest``; returns its diff id."""
    dest.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest)
    reader = _HashingReader(_decompressed(stream))
    with tarfile.open(fileobj=io.BufferedReader(reader, 1 << 16), mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            rel = _safe_name(member.name)
            if rel is None:
                continue
            parent_rel, _, base = rel.rpartition("/")
            parent = os.path.join(root, parent_rel) if parent_rel else root
            if not _inside(root, parent):
                raise ImageStoreError(f"layer entry {member.name!r} goes through a link out of the layer")
            os.makedirs(parent, exist_ok=True)
            if base == OPAQUE:
                os.setxattr(parent, "trusted.overlay.opaque", b"y")
                continue
            if base.startswith(WHITEOUT):
                target = os.path.join(parent, base[len(WHITEOUT):])
                _remove(target)
                os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0))
                continue
            target = os.path.join(parent, base)
            if member.islnk():
                link = _safe_name(member.linkname)
                if link is None or not _inside(root, os.path.join(root, link)):
                    raise ImageStoreError(f"hard link {member.name!r} points out of the layer")
                member.linkname = link
            if os.path.lexists(target) and not (member.isdir() and os.path.isdir(target)):
                _remove(target)
            member.name = rel
            kw: Any = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
            tar.extract(member, root, set_attrs=True, numeric_owner=True, **kw)
    reader.drain()
    return "sha256:" + reader.sha.hexdigest()


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.layers_dir = root / "layers"
        self.refs_path = root / "refs.json"

    def ensure_dirs(self) -> None:
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.layers_dir.mkdir(parents=True, exist_ok=True)

    # -- blobs ----------------------------------------------------------------------------------

    def put_blob(self, data: bytes, expected: str | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected and expected != digest:
            raise ImageStoreError(f"digest mismatch: expected {expected}, got {digest}")
        self.ensure_dirs()
        path = self.blobs / digest.split(":", 1)[1]
        if not path.exists():
            tmp = path.with_name(f".{uuid.uuid4().hex}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return digest

    def get_blob(self, digest: str) -> bytes:
        try:
            return (self.blobs / digest.split(":", 1)[1]).read_bytes()
        except OSError as e:
            raise ImageStoreError(f"blob {digest} is not in the store") from e

    # -- layers ---------------------------------------------------------------------------------

    def layer_path(self, diff_id: str) -> Path:
        return self.layers_dir / diff_id.split(":", 1)[1]

    def has_layer(self, diff_id: str) -> bool:
        return self.layer_path(diff_id).is_dir()

    def add_layer(self, stream: IO[bytes], expected_diff_id: str) -> None:
        """Unpack and verify a layer; a layer already present is not unpacked again."""
        if self.has_layer(expected_diff_id):
            return
        self.ensure_dirs()
        tmp = self.layers_dir / f".tmp-{uuid.uuid4().hex}"
        try:
            got = unpack_layer(stream, tmp)
            if got != expected_diff_id:
                raise ImageStoreError(f"layer content does not match its diff id: expected "
                                      f"{expected_diff_id}, got {got}")
            try:
                os.rename(tmp, self.layer_path(expected_diff_id))
            except OSError:
                if not self.has_layer(expected_diff_id):
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    # -- names ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """refs.json under a lock: ``bosun image import`` and the agent may write at once."""
        self.ensure_dirs()
        with open(self.root / "refs.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            refs = self._refs()
            yield refs
            tmp = self.refs_path.with_name(f".refs-{uuid.uuid4().hex}")
            tmp.write_text(json.dumps(refs, indent=1, sort_keys=True))
            os.replace(tmp, self.refs_path)

    def _refs(self) -> dict[str, Any]:
        try:
            data = json.loads(self.refs_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def tag(self, name: str, config_digest: str, layers: list[str], manifest: str = "") -> ImageRecord:
        missing = [d for d in layers if not self.has_layer(d)]
        if missing:
            raise ImageStoreError(f"layers missing from the store: {', '.join(missing)}")
        key = canonical(name)
        with self._locked() as refs:
            refs[key] = {"id": config_digest, "layers": layers, "manifest": manifest}
        rec = self.lookup(key)
        assert rec is not None
        return rec

    def lookup(self, name: str) -> ImageRecord | None:
        refs = self._refs()
        entry = refs.get(canonical(name))
        key = canonical(name)
        if entry is None:
            # An image id (sha256:...) or its unique prefix also names it.
            ident = name if name.startswith("sha256:") else "sha256:" + name
            for k, v in refs.items():
                if len(ident) > 12 and v.get("id", "").startswith(ident):
                    entry, key = v, k
                    break
        if entry is None:
            return None
        try:
            config = json.loads(self.get_blob(entry["id"]))
        except (ImageStoreError, ValueError):
            return None
        layers = list(entry.get("layers") or [])
        if not all(self.has_layer(d) for d in layers):
            return None
        return ImageRecord(name=key, id=entry["id"], layers=layers, manifest=entry.get("manifest", ""),
                           config=config)

    def list(self) -> list[ImageRecord]:
        out = []
        for name in sorted(self._refs()):
            rec = self.lookup(name)
            if rec is not None:
                out.append(rec)
        return out

    def remove(self, name: str) -> bool:
        """Forget a name; layers no other name uses are deleted too."""
        with self._locked() as refs:
            if refs.pop(canonical(name), None) is None:
                return False
            used = {d for v in refs.values() for d in v.get("layers") or []}
        for p in self.layers_dir.iterdir():
            if not p.name.startswith(".") and "sha256:" + p.name not in used:
                shutil.rmtree(p, ignore_errors=True)
        return True


def image_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of an image config a container run uses (entrypoint, cmd, env, cwd, user)."""
    c = config.get("config") or {}
    env = []
    for item in c.get("Env") or []:
        k, _, v = str(item).partition("=")
        env.append((k, v))
    return {"entrypoint": list(c.get("Entrypoint") or []), "cmd": list(c.get("Cmd") or []), "env": env,
            "working_dir": str(c.get("WorkingDir") or ""), "user": str(c.get("User") or "")}
