"""Images for the oci driver: registry pulls (Debian's docker-registry on loopback, a busybox
image built from busybox-static and pushed by the test), archive imports through the CLI,
whiteouts, and the errors a user sees."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.integration.oci_env import OciEnv, oci_env, requires_oci, wait_for
from tests.integration.oci_images import (
    Registry,
    build_image,
    busybox_layer,
    docker_archive,
    layer_tar,
    oci_archive,
    registry,
    sha,
)

from bosun.agent.images.archive import host_arch
from bosun.agent.runtime.base import ContainerState, ImageError, PullPolicy

pytestmark = [requires_oci, pytest.mark.timeout(60),
              pytest.mark.skipif(not shutil.which("docker-registry") or not Path("/bin/busybox").exists(),
                                 reason="needs docker-registry and busybox-static")]


@pytest.fixture
async def env() -> AsyncIterator[OciEnv]:
    async with oci_env() as e:
        yield e


@pytest.fixture(scope="module")
def reg() -> Iterator[Registry]:
    with registry() as r:
        yield r


async def _run(env: OciEnv, image: str, command: list[str], policy: PullPolicy = PullPolicy.IF_NOT_PRESENT) -> str:
    d = env.driver
    info = await d.ensure_image(image, policy)
    sb = await d.run_sandbox(env.sandbox("img"))
    cid = await d.create_container(sb, env.container(sb.pod_uid, "main", command, image=image), info)
    await d.start_container(cid)

    async def exited() -> bool:
        st = await d.container_status(cid)
        return st is not None and st.state == ContainerState.EXITED

    await wait_for(exited, 15)
    st = await d.container_status(cid)
    assert st is not None and st.log_path is not None
    logs = st.log_path.read_text()
    assert st.exit_code == 0, logs
    return "".join(line.split(" ", 3)[3] + "\n" for line in logs.splitlines())


async def test_pull_from_registry_and_run_busybox(env: OciEnv, reg: Registry) -> None:
    img = build_image([busybox_layer()], ["sh", "-c", "echo from-cmd"])
    reg.push("test/busybox", "1", img)
    name = f"{reg.host}/test/busybox:1"
    info = await env.driver.ensure_image(name, PullPolicy.IF_NOT_PRESENT)
    assert info.cmd == ["sh", "-c", "echo from-cmd"] and info.id.startswith("sha256:")
    assert await _run(env, name, []) == "from-cmd\n"
    out = await _run(env, name, ["sh", "-c", "hostname; id -u; ls /"])
    assert out.splitlines()[:2] == ["img", "0"] and "bin" in out.split()
    # Cached: Never works now, and the layer was unpacked once.
    assert (await env.driver.ensure_image(name, PullPolicy.NEVER)).id == info.id
    assert len(list((env.root / "oci" / "images" / "layers").iterdir())) == 1


async def test_pull_errors_are_readable(env: OciEnv, reg: Registry) -> None:
    d = env.driver
    with pytest.raises(ImageError) as e:
        await d.ensure_image(f"{reg.host}/test/nope:1", PullPolicy.IF_NOT_PRESENT)
    assert e.value.reason == "ErrImagePull" and "not found" in e.value.message
    with pytest.raises(ImageError) as e:
        await d.ensure_image(f"{reg.host}/test/nope:1", PullPolicy.NEVER)
    assert e.value.reason == "ErrImageNeverPull"
    with pytest.raises(ImageError) as e:
        await d.ensure_image("127.0.0.1:1/x:1", PullPolicy.ALWAYS)
    assert e.value.reason == "ErrImagePull" and "cannot reach registry" in e.value.message
    with pytest.raises(ImageError) as e:
        await d.ensure_image("Bad Name", PullPolicy.ALWAYS)
    assert e.value.reason == "InvalidImageName"


async def test_pull_verifies_digests(env: OciEnv, reg: Registry) -> None:
    layer = layer_tar({"hello.txt": b"tampered-with soon\n"})
    img = build_image([busybox_layer(), layer], ["sh"])
    reg.push("test/tampered", "1", img)
    gz_digest = list(img.blobs)[-1]
    blob = reg.blob_file(gz_digest)
    data = bytearray(blob.read_bytes())
    data[-20] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(ImageError) as e:
        await env.driver.ensure_image(f"{reg.host}/test/tampered:1", PullPolicy.ALWAYS)
    assert "failed verification" in e.value.message
    assert env.driver.images.lookup(f"{reg.host}/test/tampered:1") is None


def _bosun(*args: str) -> str:
    proc = subprocess.run([str(Path(sys.executable).parent / "bosun"), *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


async def test_import_docker_and_oci_archives_with_whiteouts(env: OciEnv, tmp_path: Path) -> None:
    base = layer_tar({"data": None, "data/a": b"a\n", "data/b": b"b\n", "opt": None, "opt/x": b"x\n"})
    top = layer_tar({"data": None, "data/.wh.a": b"", "opt": None, "opt/.wh..wh..opq": b"", "opt/y": b"y\n"})
    img = build_image([busybox_layer(), base, top], ["sh", "-c", "ls /data /opt"])
    docker_archive(img, tmp_path / "docker.tar", "example.com/demo/layers:1")
    data_dir = env.root  # the driver root is <data dir>/oci, the CLI's is <data dir>/runtime/oci
    (data_dir / "runtime").mkdir()
    (data_dir / "runtime" / "oci").symlink_to(env.root / "oci")
    out = _bosun("image", "import", str(tmp_path / "docker.tar"), "--data-dir", str(data_dir))
    assert "imported example.com/demo/layers:1" in out and "3 layers" in out
    assert "example.com/demo/layers:1" in _bosun("image", "ls", "--data-dir", str(data_dir))
    listing = await _run(env, "example.com/demo/layers:1", [], PullPolicy.NEVER)
    assert listing.split() == ["/data:", "b", "/opt:", "y"]

    oci_archive(img, tmp_path / "oci.tar", "example.com/demo/oci:2")
    out = _bosun("image", "import", str(tmp_path / "oci.tar"), "--data-dir", str(data_dir))
    assert "imported example.com/demo/oci:2" in out
    # Same layers: nothing unpacked twice.
    assert len(list((env.root / "oci" / "images" / "layers").iterdir())) == 3
    assert (await _run(env, "example.com/demo/oci:2", ["cat", "/opt/y"], PullPolicy.NEVER)) == "y\n"


async def test_pull_multi_platform_index_and_by_digest(env: OciEnv, reg: Registry) -> None:


    img = build_image([busybox_layer()], ["echo", "multi"])
    reg.push("test/multi", "single", img)
    other = "s390x" if host_arch() != "s390x" else "amd64"
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": sha(img.manifest),
         "size": len(img.manifest), "platform": {"os": "linux", "architecture": other}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": sha(img.manifest),
         "size": len(img.manifest), "platform": {"os": "linux", "architecture": host_arch()}}]}).encode()
    reg.put_manifest("test/multi", "2", index, "application/vnd.oci.image.index.v1+json")
    info = await env.driver.ensure_image(f"{reg.host}/test/multi:2", PullPolicy.ALWAYS)
    assert info.cmd == ["echo", "multi"]
    pinned = f"{reg.host}/test/multi@{sha(img.manifest)}"
    assert (await env.driver.ensure_image(pinned, PullPolicy.ALWAYS)).id == info.id
    assert await _run(env, pinned, []) == "multi\n"
