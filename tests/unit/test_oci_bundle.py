"""The OCI spec the driver writes, image names, and layer unpacking (whiteouts)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from bosun.agent.images.reference import InvalidReference, parse
from bosun.agent.images.store import ImageStore, ImageStoreError, unpack_layer
from bosun.agent.runtime import oci_bundle as ob
from bosun.agent.runtime.disk_state import host_network_hosts


def test_command_merge_follows_kubernetes() -> None:
    assert ob.merge_command([], [], ["/entry"], ["default"]) == ["/entry", "default"]
    assert ob.merge_command([], ["x"], ["/entry"], ["default"]) == ["/entry", "x"]
    assert ob.merge_command(["/bin/sh"], [], ["/entry"], ["default"]) == ["/bin/sh"]
    assert ob.merge_command(["/bin/sh"], ["-c", "true"], ["/entry"], ["default"]) == ["/bin/sh", "-c", "true"]


def test_env_container_overrides_image() -> None:
    env = ob.merge_env([("PATH", "/img"), ("A", "1")], [("A", "2"), ("B", "3")], "pod")
    assert env == ["PATH=/img", "A=2", "HOSTNAME=pod", "B=3"]


def test_capabilities() -> None:
    assert ob.capabilities([], [], False) == ob.DEFAULT_CAPS
    assert ob.capabilities(["NET_ADMIN"], ["ALL"], False) == ["CAP_NET_ADMIN"]
    assert "CAP_KILL" not in ob.capabilities([], ["KILL"], False)
    assert ob.capabilities([], ["ALL"], True) == ob.ALL_CAPS


def test_user_resolution(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("staff:x:50:\n")
    assert ob.resolve_user("", None, None, tmp_path) == (0, 0)
    assert ob.resolve_user("app", None, None, tmp_path) == (1000, 1001)
    assert ob.resolve_user("app:staff", None, None, tmp_path) == (1000, 50)
    assert ob.resolve_user("app", 7, None, tmp_path) == (7, 0)
    assert ob.resolve_user("", 1000, 9, tmp_path) == (1000, 9)
    with pytest.raises(ValueError, match="nobody"):
        ob.resolve_user("nobody", None, None, tmp_path)


def test_spec_namespaces_mounts_and_security() -> None:
    spec = ob.build_spec(ob.BundleInput(
        args=["sh"], env=["A=1"], cwd="", uid=5, gid=6, rootfs="/r", hostname="pod", read_only_root=True,
        caps=["CAP_KILL"], binds=[ob.BindMount("/host/data", "/data", True)], host_image=True,
        namespaces=[{"type": "pid"}, {"type": "network", "path": "/ns/net"}], cgroups_path="/bosun/p/c/ctr"))
    assert spec["root"] == {"path": "/r", "readonly": True}
    assert spec["process"]["user"] == {"uid": 5, "gid": 6} and spec["process"]["cwd"] == "/"
    assert spec["process"]["capabilities"]["bounding"] == ["CAP_KILL"]
    assert spec["linux"]["namespaces"][1] == {"type": "network", "path": "/ns/net"}
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert "ro" in mounts["/data"]["options"] and mounts["/tmp"]["type"] == "tmpfs"
    assert "ro" in mounts["/sys"]["options"] and "/proc/kcore" in spec["linux"]["maskedPaths"]
    privileged = ob.build_spec(ob.BundleInput(args=["sh"], env=[], cwd="/", uid=0, gid=0, rootfs="/r",
                                              privileged=True))
    assert "maskedPaths" not in privileged["linux"] and "rw" in privileged["mounts"][5]["options"]


def test_host_image_root_recreates_symlinks(tmp_path: Path) -> None:
    binds = ob.host_image_rootfs(tmp_path / "rootfs")
    dests = {b.destination for b in binds}
    assert "/usr" in dests and "/etc" in dests and all(b.read_only for b in binds)
    for name in ("bin", "lib", "sbin"):
        host = Path("/") / name
        if host.is_symlink():
            assert os.readlink(tmp_path / "rootfs" / name) == os.readlink(host)


def test_image_names() -> None:
    assert str(parse("busybox")) == "docker.io/library/busybox:latest"
    assert str(parse("localhost:5000/a/b:1")) == "localhost:5000/a/b:1"
    assert parse("ghcr.io/o/r").api_host == "ghcr.io" and parse("x").api_host == "registry-1.docker.io"
    d = "sha256:" + "a" * 64
    assert parse(f"quay.io/x@{d}").digest == d
    for bad in ("", "UPPER/case", "x@sha256:12", "a:b c"):
        with pytest.raises(InvalidReference):
            parse(bad)


def _tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.skipif(os.geteuid() != 0, reason="overlay whiteouts need root (mknod, trusted xattrs)")
def test_unpack_converts_whiteouts_and_checks_digest(tmp_path: Path) -> None:
    layer = _tar([("d/", None), ("d/.wh.gone", b""), ("o/", None), ("o/.wh..wh..opq", b""), ("o/f", b"hi")])
    diff_id = unpack_layer(io.BytesIO(layer), tmp_path / "l")
    assert diff_id == "sha256:" + hashlib.sha256(layer).hexdigest()
    gone = os.lstat(tmp_path / "l" / "d" / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(tmp_path / "l" / "o", "trusted.overlay.opaque") == b"y"
    assert (tmp_path / "l" / "o" / "f").read_bytes() == b"hi"
    store = ImageStore(tmp_path / "store")
    with pytest.raises(ImageStoreError, match="diff id"):
        store.add_layer(io.BytesIO(layer), "sha256:" + "0" * 64)
    assert not any((tmp_path / "store" / "layers").iterdir())


def test_unpack_refuses_escapes(tmp_path: Path) -> None:
    with pytest.raises(ImageStoreError):
        unpack_layer(io.BytesIO(_tar([("../evil", b"x")])), tmp_path / "l")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("etc")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path / "outside")
        tar.addfile(link)
        f = tarfile.TarInfo("etc/passwd")
        f.size = 1
        tar.addfile(f, io.BytesIO(b"x"))
    (tmp_path / "outside").mkdir()
    with pytest.raises(ImageStoreError, match="link"):
        unpack_layer(io.BytesIO(buf.getvalue()), tmp_path / "l2")
    assert not (tmp_path / "outside" / "passwd").exists()


def test_host_network_hosts_file_is_the_nodes_plus_aliases(tmp_path: Path) -> None:
    node = tmp_path / "hosts"
    node.write_text("127.0.0.1\tlocalhost\n10.0.0.5\tnode1\n")
    assert host_network_hosts([], node) == node.read_text()
    assert host_network_hosts([("10.1.2.3", ["db", "db.local"])], node) == (
        "127.0.0.1\tlocalhost\n10.0.0.5\tnode1\n\n# Entries added by HostAliases.\n10.1.2.3\tdb db.local\n")
