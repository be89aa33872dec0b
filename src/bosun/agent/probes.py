"""Liveness, readiness and startup probes for one running container.

Each container instance gets its own :class:`ContainerProbes` (a task per probe); results
cross the thresholds (successThreshold/failureThreshold) before they count, and every
change wakes the pod worker, which turns them into Ready and restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bosun.agent import grpcprobe
from bosun.agent.podspec import find_port
from bosun.agent.runtime.base import DriverError, ExecCapture, RuntimeDriver
from bosun.aio import cancel_and_wait


@dataclass
class ProbeResult:
    ok: bool
    message: str = ""


async def run_probe(probe: dict[str, Any], container: dict[str, Any], pod_ip: str, driver: RuntimeDriver,
                    container_id: str) -> ProbeResult:
    """One attempt of one probe, bounded by timeoutSeconds."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        async with asyncio.timeout(timeout):
            if "httpGet" in probe:
                return await _http(probe["httpGet"], container, pod_ip)
            if "tcpSocket" in probe:
                return await _tcp(probe["tcpSocket"], container, pod_ip)
            if "exec" in probe:
                return await _exec(probe["exec"], driver, container_id, timeout)
            if "grpc" in probe:
                spec = probe["grpc"]
                ok, message = await grpcprobe.check(pod_ip, int(spec.get("port") or 0), str(spec.get("service") or ""),
                                                    timeout)
                return ProbeResult(ok, message)
            return ProbeResult(False, "probe type not supported")
    except TimeoutError:
        return ProbeResult(False, f"probe timed out after {timeout:g}s")


async def _http(spec: dict[str, Any], container: dict[str, Any], pod_ip: str) -> ProbeResult:
    scheme = str(spec.get("scheme") or "HTTP").lower()
    host = str(spec.get("host") or pod_ip)
    port = find_port(container, spec.get("port") or 80)
    path = str(spec.get("path") or "/")
    url = f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
    headers = {str(h.get("name")): str(h.get("value")) for h in spec.get("httpHeaders") or []}
    headers.setdefault("User-Agent", "kube-probe/1.32")
    try:
        async with aiohttp.ClientSession() as s, s.get(url, headers=headers, ssl=False,
                                                        allow_redirects=False) as resp:
            if 200 <= resp.status < 400:
                return ProbeResult(True)
            return ProbeResult(False, f"HTTP probe failed with statuscode: {resp.status}")
    except (aiohttp.ClientError, OSError) as e:
        return ProbeResult(False, f'Get "{url}": {_reason(e)}')


def _reason(e: BaseException) -> str:
    cause = e.__cause__ if e.__cause__ is not None else e
    if isinstance(cause, ConnectionRefusedError) or "refused" in str(e).lower():
        return "connect: connection refused"
    return str(cause) or type(cause).__name__


async def _tcp(spec: dict[str, Any], container: dict[str, Any], pod_ip: str) -> ProbeResult:
    host = str(spec.get("host") or pod_ip)
    port = find_port(container, spec.get("port") or 0)
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        return ProbeResult(False, f"dial tcp {host}:{port}: {_reason(e)}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(True)


async def _exec(spec: dict[str, Any], driver: RuntimeDriver, container_id: str, seconds: float) -> ProbeResult:
    command = [str(a) for a in spec.get("command") or []]
    if isinstance(driver, ExecCapture):  # one process start in the spawn pool, no streams (see OciDriver)
        try:
            code, out = await driver.exec_capture(container_id, command, seconds)
        except DriverError as e:
            return ProbeResult(False, e.message)
        except TimeoutError:
            return ProbeResult(False, f"probe timed out after {seconds:g}s")
        if code == 0:
            return ProbeResult(True)
        text = out.decode("utf-8", "replace").strip()
        return ProbeResult(False, text or f"command {command!r} exited with {code}")
    try:
        proc = await driver.exec(container_id, command)
    except DriverError as e:
        return ProbeResult(False, e.message)
    try:
        out = await proc.stdout.read()
        if proc.stderr is not None:
            out += await proc.stderr.read()
        code = await proc.wait()
    except asyncio.CancelledError:
        proc.kill()
        raise
    if code == 0:
        return ProbeResult(True)
    text = out.decode("utf-8", "replace").strip()
    return ProbeResult(False, text or f"command {command!r} exited with {code}")


class ContainerProbes:
    """The probe state of one container instance; ``on_change(kind, result)`` is called when
    a probe's verdict flips (after its thresholds)."""

    def __init__(self, container: dict[str, Any], container_id: str, pod_ip: str, driver: RuntimeDriver,
                 on_change: Callable[[str, ProbeResult], None]) -> None:
        self.container = container
        self.container_id = container_id
        self.pod_ip = pod_ip
        self.driver = driver
        self.on_change = on_change
        self.started = "startupProbe" not in container
        self.ready = "readinessProbe" not in container
        self.live = True
        self.failure: tuple[str, str] | None = None  # (probe kind, message) that asks for a restart
        self._tasks: list[asyncio.Task[None]] = []
        # The readiness probe's first attempt is about to run (right after the container
        # started, no initial delay or startup probe before it): the worker's status may wait.
        rp: dict[str, Any] = container.get("readinessProbe") or {}
        self.first_readiness_due = bool(rp) and self.started and not float(rp.get("initialDelaySeconds") or 0)
        self._started_event = asyncio.Event()
        if self.started:
            self._started_event.set()

    def start(self) -> None:
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if kind in self.container:
                self._tasks.append(asyncio.create_task(self._loop(kind, self.container[kind]),
                                                       name=f"probe-{kind}-{self.container_id}"))

    async def stop(self) -> None:
        for t in self._tasks:
            await cancel_and_wait(t)
        self._tasks.clear()

    async def _loop(self, kind: str, probe: dict[str, Any]) -> None:
        if kind != "startupProbe":
            await self._started_event.wait()
        await asyncio.sleep(float(probe.get("initialDelaySeconds") or 0))
        period = float(probe.get("periodSeconds") or 10)
        need_ok = int(probe.get("successThreshold") or 1)
        need_fail = int(probe.get("failureThreshold") or 3)
        oks = fails = 0
        while True:
            began = time.monotonic()
            result = await run_probe(probe, self.container, self.pod_ip, self.driver, self.container_id)
            if kind == "readinessProbe":
                self.first_readiness_due = False
            if result.ok:
                oks, fails = oks + 1, 0
                if oks >= need_ok:
                    self._verdict(kind, True, result)
                    if kind == "startupProbe":
                        return
            else:
                oks, fails = 0, fails + 1
                if fails >= need_fail:
                    self._verdict(kind, False, result)
            await asyncio.sleep(max(0.0, period - (time.monotonic() - began)))

    def _verdict(self, kind: str, ok: bool, result: ProbeResult) -> None:
        if kind == "readinessProbe":
            if ok == self.ready:
                return
            self.ready = ok
        elif kind == "startupProbe":
            if ok:
                if self.started:
                    return
                self.started = True
                self._started_event.set()
            else:
                self.failure = ("Startup", result.message)
        else:
            if ok:
                return
            self.live = False
            self.failure = ("Liveness", result.message)
        self.on_change(kind, result)
