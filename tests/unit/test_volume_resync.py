"""A pod's file volumes (here downwardAPI, which needs no API server): a changed content is
written at the next sync, an unchanged one is compared with the disk only every RESYNC_S,
and a file changed on disk is then put back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bosun.agent import volumes
from bosun.agent.refs import RefFetcher
from bosun.agent.volumes import VolumeManager
from bosun.client.kubeconfig import ClusterConfig
from bosun.client.rest import Client


def _pod(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": labels},
            "spec": {"containers": [{"name": "c"}],
                     "volumes": [{"name": "info", "downwardAPI": {"items": [
                         {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}}


async def test_unchanged_volumes_are_checked_against_the_disk_only_now_and_then(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(volumes, "RESYNC_S", 0.5)
    client = Client(ClusterConfig(server="https://127.0.0.1:1"))  # never called: downwardAPI reads the pod
    try:
        refs = RefFetcher(client, "ns")
        vm = VolumeManager(tmp_path / "pod", {})
        paths = await vm.prepare(_pod({"app": "a"}), refs)
        labels = paths["info"] / "labels"
        assert labels.read_text() == 'app="a"'
        # The pod's labels change: written at once, however recent the last sync.
        await vm.prepare(_pod({"app": "b"}), refs)
        assert labels.read_text() == 'app="b"'
        # Changed on disk behind the agent's back: left so until RESYNC_S passed, then put back.
        labels.write_text("tampered")
        await vm.prepare(_pod({"app": "b"}), refs)
        assert labels.read_text() == "tampered"
        await asyncio.sleep(0.6)
        await vm.prepare(_pod({"app": "b"}), refs)
        assert labels.read_text() == 'app="b"'
    finally:
        await client.close()
