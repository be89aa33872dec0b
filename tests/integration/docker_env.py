"""A private Docker Engine for the docker driver's tests: its own data root, exec root, pid
file and socket under /tmp, no bridge and no iptables rules (the host's firewall and any
engine the host runs are left alone), busybox loaded from an archive built from Debian's
busybox-static. Stopped, with everything it mounted and its directories removed, even when
the tests fail."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from tests.integration.oci_images import build_image, busybox_layer, docker_archive

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
BUSYBOX_IMAGE = "busybox:bosun-test"
requires_docker = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(DOCKERD) or not os.path.exists("/bin/busybox")
    or not os.path.exists("/usr/lib/cni/bridge"),
    reason="needs root, dockerd (docker.io), busybox-static and containernetworking-plugins")


def _mounts_under(root: str) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp.startswith(root + "/"):
            out.append(mp)
    return out


@contextlib.contextmanager
def private_dockerd() -> Iterator[str]:
    """The engine's socket URL while it runs."""
    top = Path(tempfile.mkdtemp(prefix="bosun-dockerd-"))
    sock = top / "docker.sock"
    log = (top / "dockerd.log").open("wb")
    proc = subprocess.Popen([DOCKERD, "--data-root", str(top / "data"), "--exec-root", str(top / "exec"),
                             "--pidfile", str(top / "docker.pid"), "-H", f"unix://{sock}", "--bridge=none",
                             "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"unix://{sock}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(docker.errors.DockerException, OSError):
                client = docker.APIClient(base_url=url, version="auto")
                break
            assert proc.poll() is None and time.monotonic() < deadline, \
                (top / "dockerd.log").read_text()[-2000:]
            time.sleep(0.2)
        archive = top / "busybox.tar"
        docker_archive(build_image([busybox_layer()], ["sh"]), archive, BUSYBOX_IMAGE)
        with archive.open("rb") as f:
            for _ in client.load_image(f.read()):
                pass
        client.close()
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
        for mp in sorted(_mounts_under(str(top)), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        shutil.rmtree(top, ignore_errors=True)
