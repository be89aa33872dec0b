"""Building test images by hand (layer tars, config, manifest) from Debian's busybox-static,
writing them as docker/OCI archives, and pushing them to a registry with blob uploads."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bosun.agent.images.archive import host_arch

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "echo", "ls", "cat", "sleep", "id", "hostname", "wget", "httpd")


def layer_tar(files: dict[str, bytes | str | None], *, exe: tuple[str, ...] = ()) -> bytes:
    """``name -> bytes`` (file), ``str`` (symlink target) or ``None`` (directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755 if name in exe else 0o644
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def busybox_layer() -> bytes:
    passwd = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"
    files: dict[str, bytes | str | None] = {"bin": None, "bin/busybox": Path(BUSYBOX).read_bytes(),
                                            "etc": None, "tmp": None, "etc/passwd": passwd,
                                            "etc/group": b"root:x:0:\napp:x:1000:\n"}
    for applet in APPLETS:
        files[f"bin/{applet}"] = "busybox"
    return layer_tar(files, exe=("bin/busybox",))


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class BuiltImage:
    layers: list[bytes]  # uncompressed tars, bottom first
    config: bytes
    blobs: dict[str, bytes]  # digest -> content of every pushed blob (gzipped layers)
    manifest: bytes


def build_image(layers: list[bytes], cmd: list[str], env: list[str] | None = None, user: str = "") -> BuiltImage:
    config = json.dumps({
        "architecture": host_arch(), "os": "linux",
        "config": {"Cmd": cmd, "Env": env or ["PATH=/bin"], "WorkingDir": "/", "User": user},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
    }).encode()
    gz = [gzip.compress(layer, mtime=0) for layer in layers]
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                   "digest": sha(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(g),
                    "digest": sha(g)} for g in gz],
    }).encode()
    blobs = {sha(config): config, **{sha(g): g for g in gz}}
    return BuiltImage(layers=layers, config=config, blobs=blobs, manifest=manifest)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def docker_archive(img: BuiltImage, path: Path, tag: str) -> None:
    with tarfile.open(path, "w") as tar:
        names = []
        for i, layer in enumerate(img.layers):
            names.append(f"layer{i}/layer.tar")
            _add(tar, names[-1], layer)
        cfg = sha(img.config).split(":")[1] + ".json"
        _add(tar, cfg, img.config)
        _add(tar, "manifest.json", json.dumps([{"Config": cfg, "RepoTags": [tag], "Layers": names}]).encode())


def oci_archive(img: BuiltImage, path: Path, name: str) -> None:
    with tarfile.open(path, "w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        for digest, data in img.blobs.items():
            _add(tar, f"blobs/sha256/{digest.split(':')[1]}", data)
        _add(tar, f"blobs/sha256/{sha(img.manifest).split(':')[1]}", img.manifest)
        _add(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": sha(img.manifest),
            "size": len(img.manifest), "annotations": {"io.containerd.image.name": name,
                                                       "org.opencontainers.image.ref.name": "latest"}}]}).encode())


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    storage: Path

    def push(self, repo: str, tag: str, img: BuiltImage) -> None:
        base = f"http://{self.host}/v2/{repo}"
        for digest, data in img.blobs.items():
            req = urllib.request.Request(f"{base}/blobs/uploads/", method="POST", data=b"")
            with urllib.request.urlopen(req) as resp:
                location = resp.headers["Location"]
            if location.startswith("/"):
                location = f"http://{self.host}{location}"
            sep = "&" if "?" in location else "?"
            req = urllib.request.Request(f"{location}{sep}digest={digest}", method="PUT", data=data,
                                         headers={"Content-Type": "application/octet-stream"})
            with urllib.request.urlopen(req) as resp:
                assert resp.status == 201
        req = urllib.request.Request(f"{base}/manifests/{tag}", method="PUT", data=img.manifest,
                                     headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 201

    def put_manifest(self, repo: str, tag: str, body: bytes, media_type: str) -> None:
        req = urllib.request.Request(f"http://{self.host}/v2/{repo}/manifests/{tag}", method="PUT", data=body,
                                     headers={"Content-Type": media_type})
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 201

    def blob_file(self, digest: str) -> Path:
        hexd = digest.split(":")[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


@contextmanager
def registry() -> Iterator[Registry]:
    """Debian's docker-registry on a free loopback port, with its storage in a temp dir."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bosun-registry-") as tmp:
        cfg = Path(tmp) / "config.yml"
        cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {tmp}/data\n"
                       f"http:\n  addr: 127.0.0.1:{port}\n")
        proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                    break
                except (urllib.error.URLError, ConnectionError):
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("docker-registry did not start") from None
                    time.sleep(0.05)
            yield Registry(host=f"127.0.0.1:{port}", storage=Path(tmp) / "data")
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
