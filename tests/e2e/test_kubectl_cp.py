"""`kubectl cp` (exec + tar) against real crun containers of `bosun up --runtime oci`: files and
directories both ways, and clear errors for a missing path and for an image without tar."""

from __future__ import annotations

import filecmp
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.netns_node import NetnsNode, netns_node
from tests.harness.fixtures import requires_netns
from tests.integration.oci_images import build_image, busybox_layer, docker_archive

pytestmark = [requires_netns, pytest.mark.timeout(180)]

NO_TAR_IMAGE = "example.com/streams/notar:1"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsNode]:
    tmp = tmp_path_factory.mktemp("cp")
    with netns_node(tmp) as n:
        # A busybox image whose applets do not include tar.
        docker_archive(build_image([busybox_layer()], ["sleep", "600"]), tmp / "notar.tar", NO_TAR_IMAGE)
        n.ok_bosun("image", "import", str(tmp / "notar.tar"), "--data-dir", str(n.data))
        n.ok("run", "files", "--image=host", "--restart=Never", "--", "sleep", "600")
        n.ok("run", "notar", f"--image={NO_TAR_IMAGE}", "--image-pull-policy=Never", "--restart=Never")
        n.wait_running("files")
        n.wait_running("notar")
        yield n


def test_a_directory_goes_in_and_comes_back_out(node: NetnsNode, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    node.ok("cp", str(src), "files:/tmp/copied")
    assert node.ok("exec", "files", "--", "cat", "/tmp/copied/a.txt") == "alpha\n"
    node.ok("cp", "files:/tmp/copied", str(tmp_path / "back"))
    cmp = filecmp.dircmp(src, tmp_path / "back")
    assert (cmp.left_only, cmp.right_only, cmp.diff_files) == ([], [], [])
    assert (tmp_path / "back" / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()


def test_a_single_file_both_ways(node: NetnsNode, tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("one file\n")
    node.ok("cp", str(tmp_path / "one.txt"), "files:/tmp/one.txt")
    node.ok("cp", "files:/tmp/one.txt", str(tmp_path / "again.txt"))
    assert (tmp_path / "again.txt").read_text() == "one file\n"


def test_missing_paths_are_errors(node: NetnsNode, tmp_path: Path) -> None:
    # From the pod: kubectl prints tar's complaint (it sends the remote stderr to stdout) and
    # makes nothing; its exit code races with its own goroutines, as against any kubelet.
    out = node.kubectl("cp", "files:/tmp/no-such-file", str(tmp_path / "x"))
    assert "/tmp/no-such-file: Cannot stat: No such file or directory" in out.stdout + out.stderr, out
    assert not (tmp_path / "x").exists()
    # Into a directory the pod does not have: tar fails there, and so does kubectl.
    (tmp_path / "f.txt").write_text("x\n")
    into = node.kubectl("cp", str(tmp_path / "f.txt"), "files:/no/such/dir/f.txt")
    assert into.returncode != 0
    assert "/no/such/dir: Cannot open: No such file or directory" in into.stderr, into.stderr
    local = node.kubectl("cp", str(tmp_path / "nothing-here"), "files:/tmp/x")
    assert local.returncode != 0 and "doesn't exist in local filesystem" in local.stderr, local.stderr


def test_an_image_without_tar_says_so(node: NetnsNode, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x\n")
    into = node.kubectl("cp", str(tmp_path / "f.txt"), "notar:/tmp/f.txt")
    assert into.returncode != 0
    assert "executable file `tar` not found" in into.stderr, into.stderr
    out = node.kubectl("cp", "notar:/etc/passwd", str(tmp_path / "passwd"))
    assert "executable file `tar` not found" in out.stdout + out.stderr, out
    assert not (tmp_path / "passwd").exists()
