"""Pulling from a registry speaking the Docker Registry HTTP API v2 (Distribution).

Manifests v2 schema 2 and OCI, and their multi-platform indexes (this machine's
linux/<arch> is chosen); anonymous bearer-token auth as Docker Hub and GHCR require; every
blob is checked against its digest, and a layer already unpacked on this node (same diff id)
is not downloaded again. Registries on loopback (``localhost:5000``, ``127.0.0.1:5000``) are
spoken to in plain HTTP, like Docker's default insecure registries.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile

import aiohttp

from bosun.agent.images.archive import INDEX_TYPES, host_arch, pick_platform
from bosun.agent.images.reference import Reference
from bosun.agent.images.store import ImageRecord, ImageStore, ImageStoreError

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    *INDEX_TYPES,
)


class PullError(Exception):
    """``not_found`` tells "no such image" from "could not talk to the registry"."""

    def __init__(self, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


def is_insecure(registry: str, extra: tuple[str, ...] = ()) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry.split("]")[0] + "]"
    return host in ("localhost", "127.0.0.1", "[::1]") or registry in extra


class _Client:
    def __init__(self, session: aiohttp.ClientSession, ref: Reference, insecure: bool) -> None:
        self.session = session
        self.ref = ref
        self.base = f"{'http' if insecure else 'https'}://{ref.api_host}/v2/{ref.repository}"
        self.token = ""

    async def _auth(self, header: str) -> None:
        m = re.match(r"Bearer\s+(.*)", header, re.I)
        if not m:
            raise PullError(f"registry {self.ref.registry} requires credentials, which Bosun does not have")
        params = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        realm = params.pop("realm", "")
        params.setdefault("scope", f"repository:{self.ref.repository}:pull")
        async with self.session.get(realm, params=params) as resp:
            if resp.status != 200:
                raise PullError(f"registry {self.ref.registry} refused an anonymous token ({resp.status})")
            data = await resp.json(content_type=None)
        self.token = data.get("token") or data.get("access_token") or ""

    async def get(self, path: str, accept: tuple[str, ...] = ()) -> aiohttp.ClientResponse:
        for _ in range(2):
            headers = {"Accept": ", ".join(accept)} if accept else {}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            resp = await self.session.get(self.base + path, headers=headers)
            if resp.status == 401 and not self.token:
                header = resp.headers.get("WWW-Authenticate", "")
                resp.release()
                await self._auth(header)
                continue
            return resp
        return resp

    async def manifest(self, reference: str) -> tuple[bytes, str]:
        resp = await self.get(f"/manifests/{reference}", MANIFEST_TYPES)
        async with resp:
            if resp.status == 404:
                raise PullError(f'image "{self.ref}" not found in registry {self.ref.registry}', not_found=True)
            if resp.status in (401, 403):
                raise PullError(f'access to image "{self.ref}" denied by registry {self.ref.registry} '
                                f"(it may not exist, or need credentials)", not_found=True)
            if resp.status != 200:
                raise PullError(f"registry {self.ref.registry} answered {resp.status} for {self.ref}")
            body = await resp.read()
            media = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise PullError(f"manifest of {self.ref} does not match its digest {reference} (got {digest})")
        if not media or media == "application/json":
            media = json.loads(body).get("mediaType", "")
        return body, media or digest

    async def blob(self, digest: str) -> bytes:
        resp = await self.get(f"/blobs/{digest}")
        async with resp:
            if resp.status != 200:
                raise PullError(f"registry {self.ref.registry} answered {resp.status} for blob {digest} of {self.ref}")
            body = await resp.read()
        got = "sha256:" + hashlib.sha256(body).hexdigest()
        if got != digest:
            raise PullError(f"blob {digest} of {self.ref} failed verification (content digest {got})")
        return body

    async def blob_to_file(self, digest: str, dest: str) -> None:
        resp = await self.get(f"/blobs/{digest}")
        async with resp:
            if resp.status != 200:
                raise PullError(f"registry {self.ref.registry} answered {resp.status} for blob {digest} of {self.ref}")
            sha = hashlib.sha256()
            with open(dest, "wb") as f:  # noqa: ASYNC230 - local disk, written in 64 KiB chunks
                async for chunk in resp.content.iter_chunked(1 << 16):
                    sha.update(chunk)
                    f.write(chunk)
        got = "sha256:" + sha.hexdigest()
        if got != digest:
            raise PullError(f"layer {digest} of {self.ref} failed verification (content digest {got})")


async def pull(store: ImageStore, ref: Reference, *, insecure: bool = False,
               timeout: float = 600.0) -> ImageRecord:  # noqa: ASYNC109 - passed to aiohttp
    """Fetch ``ref`` into ``store`` and name it; raises :class:`PullError`."""
    tmo = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
    try:
        async with aiohttp.ClientSession(timeout=tmo) as session:
            client = _Client(session, ref, insecure)
            body, media = await client.manifest(ref.digest or ref.tag)
            manifest_digest = "sha256:" + hashlib.sha256(body).hexdigest()
            doc = json.loads(body)
            if media in INDEX_TYPES or "manifests" in doc:
                chosen = pick_platform(doc.get("manifests") or [])
                if chosen is None:
                    raise PullError(f'image "{ref}" has no linux/{host_arch()} variant', not_found=True)
                body, media = await client.manifest(chosen["digest"])
                manifest_digest = chosen["digest"]
                doc = json.loads(body)
            if "config" not in doc:
                raise PullError(f'image "{ref}" uses an unsupported manifest format ({media})')
            store.put_blob(body, manifest_digest)
            config_bytes = await client.blob(doc["config"]["digest"])
            store.put_blob(config_bytes, doc["config"]["digest"])
            diff_ids = list((json.loads(config_bytes).get("rootfs") or {}).get("diff_ids") or [])
            layers = doc.get("layers") or []
            if len(diff_ids) != len(layers):
                raise PullError(f"image {ref}: config and manifest disagree on the number of layers")
            for desc, diff_id in zip(layers, diff_ids, strict=True):
                if store.has_layer(diff_id):
                    continue
                store.ensure_dirs()
                fd, tmp = tempfile.mkstemp(dir=store.root, prefix=".pull-")
                os.close(fd)
                try:
                    await client.blob_to_file(desc["digest"], tmp)
                    await asyncio.to_thread(_unpack_file, store, tmp, diff_id)
                finally:
                    os.unlink(tmp)
            return store.tag(str(ref), doc["config"]["digest"], diff_ids, manifest_digest)
    except aiohttp.ClientError as e:
        raise PullError(f"cannot reach registry {ref.registry}: {e}") from e
    except TimeoutError as e:
        raise PullError(f"pulling {ref} from {ref.registry} timed out") from e
    except ImageStoreError as e:
        raise PullError(f"image {ref}: {e}") from e


def _unpack_file(store: ImageStore, path: str, diff_id: str) -> None:
    with open(path, "rb") as f:
        store.add_layer(f, diff_id)
