"""The agent's trash: a discarded directory is gone from its place at once and deleted later."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import pytest

from bosun.agent import trash as trash_module
from bosun.agent.trash import Trash


def _tree(root: Path, files: int = 50, link_to: Path | None = None) -> Path:
    for i in range(files):
        d = root / f"d{i % 5}" / "deeper"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_text("x" * 100)
    if link_to is not None:
        os.symlink(link_to, root / "link-out")  # removal must not follow it
    return root


def _wait_empty(trash: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while any(trash.iterdir()):
        assert time.monotonic() < deadline, f"trash not emptied: {list(trash.iterdir())}"
        time.sleep(0.05)


def test_discarded_directory_disappears_at_once_and_is_deleted_later(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("k")
    victim = _tree(tmp_path / "pods" / "uid-1", link_to=outside)
    trash = Trash(tmp_path / "trash")
    trash.discard(victim)
    assert not victim.exists()
    assert (tmp_path / "pods").is_dir()  # only the directory itself went
    _wait_empty(tmp_path / "trash")
    assert (outside / "keep").read_text() == "k"


def test_missing_path_is_nothing_to_do(tmp_path: Path) -> None:
    trash = Trash(tmp_path / "trash")
    trash.discard(tmp_path / "never-was")
    assert not any((tmp_path / "trash").iterdir())


def test_what_a_crash_left_in_the_trash_is_deleted_on_start(tmp_path: Path) -> None:
    _tree(tmp_path / "trash" / "left-by-a-crash")
    (tmp_path / "trash" / "a-file").write_text("x")
    Trash(tmp_path / "trash").empty_later()
    _wait_empty(tmp_path / "trash")


def test_another_filesystem_is_deleted_in_place(tmp_path: Path) -> None:
    """rename cannot cross filesystems: such a directory is deleted there and then."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        victim = _tree(Path(other) / "c1", files=5)
        if os.stat(other).st_dev == os.stat(tmp_path).st_dev:
            raise AssertionError("/dev/shm and the test's tmp_path share a filesystem here")
        Trash(tmp_path / "trash").discard(victim)
        assert not victim.exists()
        assert not any((tmp_path / "trash").iterdir())


def test_the_deleting_thread_ends_when_idle_and_comes_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trash_module, "IDLE_S", 0.2)
    trash = Trash(tmp_path / "trash")
    trash.discard(_tree(tmp_path / "a", files=5))
    _wait_empty(tmp_path / "trash")
    deadline = time.monotonic() + 10
    while any(t.name == f"trash {tmp_path / 'trash'}" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the idle thread did not end"
        time.sleep(0.05)
    trash.discard(_tree(tmp_path / "b", files=5))  # a new thread deletes this one
    _wait_empty(tmp_path / "trash")


def test_finish_waits_until_nothing_is_left_nor_being_deleted(tmp_path: Path) -> None:
    """A closing driver waits on this: after it, the trash is empty and no ``rm`` of it runs."""
    trash = Trash(tmp_path / "trash")
    for i in range(3):
        trash.discard(_tree(tmp_path / f"c{i}", files=2000))
    trash.finish(60.0)
    assert list((tmp_path / "trash").iterdir()) == []
    running = [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline_has(pid, str(tmp_path))]
    assert running == []


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
