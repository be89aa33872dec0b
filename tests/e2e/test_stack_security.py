"""A Compose file's privileges reach real containers: `bosun stack deploy` on `bosun up
--runtime oci`, and each service reports from inside what it was given (cap_add/cap_drop,
privileged, devices, sysctls, read_only)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.helpers import BosunCli, Kubectl, bosun_up
from tests.harness.fixtures import requires_netns

pytestmark = [requires_netns, pytest.mark.timeout(150)]

COMPOSE = """
services:
  tight:
    image: host
    command: ["sh", "-c", "grep CapEff /proc/self/status; test -c /dev/xfuse && echo fuse;
              cat /proc/sys/net/ipv4/ip_unprivileged_port_start; touch /x 2>/dev/null || echo read-only;
              sleep 600"]
    cap_drop: [ALL]
    cap_add: [NET_ADMIN]
    devices: ["/dev/fuse:/dev/xfuse:r"]
    sysctls: {net.ipv4.ip_unprivileged_port_start: "99"}
    read_only: true
  root:
    image: host
    privileged: true
    command: ["sh", "-c", "test -c /dev/kmsg && echo kmsg; sleep 600"]
"""


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[BosunCli, Kubectl]]:
    with bosun_up(tmp_path, runtime="oci") as running:
        yield BosunCli(running), running.kubectl


def _logs(k: Kubectl, service: str, lines: int, within: float = 60) -> list[str]:
    deadline = time.monotonic() + within
    out: list[str] = []
    while time.monotonic() < deadline:
        got = k("logs", "-n", "sec", f"deploy/{service}")
        out = got.stdout.split("\n") if got.returncode == 0 else []
        if len([line for line in out if line]) >= lines:
            return [line for line in out if line]
        time.sleep(0.5)
    raise AssertionError(f"{service}: {out}")


def test_compose_privileges_reach_the_containers(up: tuple[BosunCli, Kubectl], tmp_path: Path) -> None:
    cli, k = up
    compose = tmp_path / "compose.yml"
    compose.write_text(COMPOSE)
    cli.ok("stack", "deploy", "-c", str(compose), "sec")
    cap, *rest = _logs(k, "tight", 4)
    assert cap.split() == ["CapEff:", f"{1 << 12:016x}"]  # NET_ADMIN only
    assert rest == ["fuse", "99", "read-only"]
    assert _logs(k, "root", 1) == ["kmsg"]
    cli.ok("stack", "rm", "sec")
