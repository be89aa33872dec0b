"""What a write through a pod's ephemeralcontainers subresource may do, alone."""

from __future__ import annotations

from typing import Any

from bosun.api.validation.ephemeral import validate_ephemeral_update


def _pod(*debug: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "app", "image": "x"}], "ephemeralContainers": list(debug)}}


def _details(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    return [e.detail() for e in validate_ephemeral_update(new, old)]


def test_debug_containers_are_added_never_changed_or_removed() -> None:
    one = {"name": "dbg", "image": "busybox", "targetContainerName": "app", "resources": {}}
    assert _details(_pod(one), _pod()) == []
    assert _details(_pod(one, {"name": "two", "image": "busybox"}), _pod(one)) == []
    assert _details(_pod(), _pod(one)) == [
        'spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" may not be removed']
    assert _details(_pod({**one, "image": "alpine"}), _pod(one)) == [
        'spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" may not be changed']


def test_what_a_debug_container_may_not_have() -> None:
    bad = {"name": "app", "image": "", "targetContainerName": "ghost", "ports": [{"containerPort": 80}],
           "readinessProbe": {"tcpSocket": {"port": 80}}}
    assert _details(_pod(bad), _pod()) == [
        "spec.ephemeralContainers[0].image: Required value",
        'spec.ephemeralContainers[0].name: Duplicate value: "app"',
        "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
        "spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral Container",
        'spec.ephemeralContainers[0].targetContainerName: Not found: "ghost"']
