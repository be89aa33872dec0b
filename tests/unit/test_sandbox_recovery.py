"""A restarted agent's pod sandboxes: those whose namespaces are still mounted are left alone,
those with no process left in their namespaces are marked for a new sandbox."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bosun.agent.runtime.sandbox_recovery import recover


def _sandbox(root: Path, sid: str, ready: bool = True) -> Path:
    d = root / sid
    (d / "ns").mkdir(parents=True)
    data = {"ready": ready, "netns_path": str(d / "ns" / "net"), "ipc_ns": str(d / "ns" / "ipc"),
            "uts_ns": str(d / "ns" / "uts")}
    (d / "sandbox.json").write_text(json.dumps(data))
    return d


def test_only_ready_sandboxes_with_unmounted_namespaces_and_no_live_process_are_marked(tmp_path: Path) -> None:
    mounted = _sandbox(tmp_path, "a")
    lost = _sandbox(tmp_path, "b")
    _sandbox(tmp_path, "c", ready=False)
    mounts = [os.path.realpath(mounted / "ns" / k) for k in ("net", "ipc", "uts")]
    # pid 1 is alive but not in pod b's cgroup: a reused pid is not taken for the pod's.
    assert recover(tmp_path, mounts, lambda sid: [1, 0]) == ["b"]
    assert json.loads((lost / "sandbox.json").read_text())["ready"] is False
    assert json.loads((mounted / "sandbox.json").read_text())["ready"] is True
    assert recover(tmp_path / "missing", [], lambda sid: []) == []


def test_a_sandbox_reached_through_a_symlink_counts_as_mounted(tmp_path: Path) -> None:
    real = tmp_path / "real"
    sandbox = _sandbox(real, "a")
    (tmp_path / "link").symlink_to(real)
    data = json.loads((sandbox / "sandbox.json").read_text())
    data = {k: str(v).replace(str(real), str(tmp_path / "link")) if k != "ready" else v for k, v in data.items()}
    (sandbox / "sandbox.json").write_text(json.dumps(data))
    mounts = [os.path.realpath(sandbox / "ns" / k) for k in ("net", "ipc", "uts")]  # as mountinfo shows them
    assert recover(tmp_path / "link", mounts, lambda sid: []) == []
