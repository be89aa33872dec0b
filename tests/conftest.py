"""Shared fixtures: a real API server (HTTPS, SQLite store) for integration and e2e tests."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import pytest

from bosun.api.errors import APIError
from bosun.api.registry import must_by_plural
from bosun.api.server import APIServer, ServerConfig
from bosun.controlplane import ControlPlane, ControlPlaneOptions
from bosun.monitoring.history import HistoryConfig
from bosun.network.config import NetworkConfig

pytest_plugins = ["tests.fixtures.etcd", "tests.harness.fixtures"]

# Every API server started by the tests (in this process or as `bosun server`/`bosun up`)
# checks at stop that nobody modified the objects its watch cache shares with informers.
os.environ["BOSUN_CHECK_SHARED_OBJECTS"] = "1"


# No controller but the collectors (they always run unless named with a "-"), no scheduler.
COLLECTORS_ONLY = ControlPlaneOptions(controllers=["none"], scheduler=False)


@dataclass
class RunningServer:
    """A real `bosun` API server on a loopback port, run on its own event loop thread."""

    server: APIServer | ControlPlane
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def kubeconfig(self) -> str:
        return str(self.server.kubeconfig)

    @property
    def api(self) -> APIServer:
        return self.server.api if isinstance(self.server, ControlPlane) else self.server

    @property
    def token(self) -> str:
        return self.api.token

    @property
    def ca_path(self) -> str:
        return str(self.data_dir / "pki" / "ca.crt")

    def call(self, coro: object, timeout: float = 30) -> object:
        """Run a coroutine on the server's loop (e.g. to reach into its store)."""
        fut: Future[object] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result(timeout)

    def stop(self) -> None:
        try:
            self.call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def start_server(
    data_dir: Path, store_url: str = "", options: ControlPlaneOptions | None = None,
    encryption_config: Path | None = None, listen: str = "127.0.0.1:0", network: NetworkConfig | None = None,
    history: HistoryConfig | None = None,
) -> RunningServer:
    """The API server with only the controllers that finish deletion (garbage collector,
    namespace, CRD finalizer), or with ``options`` the whole control plane (scheduler,
    controllers).
    ``encryption_config`` is the server's --encryption-config (None: the server's default);
    ``listen`` another address than loopback (for agents in network namespaces of the test's);
    ``network`` its --cluster-cidr, --service-cidr... (None: the defaults); ``history`` its
    --metrics-retention/--metrics-resolution (None: the defaults)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="api-server", daemon=True)
    thread.start()
    config = ServerConfig(data_dir=data_dir, listen=listen, store_url=store_url,
                          encryption_config=encryption_config, network=network or NetworkConfig(),
                          history=history or HistoryConfig())
    server = ControlPlane(config, options or COLLECTORS_ONLY)
    fut = asyncio.run_coroutine_threadsafe(server.start(), loop)
    try:
        fut.result(90)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        raise
    running = RunningServer(server, loop, thread, data_dir)
    if "serviceaccounts" in server.components:
        try:
            _default_account_made(running)
        except BaseException:
            running.stop()
            raise
    return running


def _default_account_made(running: RunningServer, within: float = 60) -> None:
    """Wait for the ``default`` ServiceAccount of namespace ``default``, as upstream's e2e
    framework does: pods are refused without it, and the controller that makes it starts once
    the server leads (a moment after it is up)."""
    accounts = must_by_plural("", "v1", "serviceaccounts")
    deadline = time.monotonic() + within
    while True:
        try:
            running.call(running.api.storage.get(accounts, "default", "default"))
            return
        except APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def served(data_dir: Path, store_url: str = "", options: ControlPlaneOptions | None = None,
           history: HistoryConfig | None = None) -> Iterator[RunningServer]:
    """A fixture's body: a server (see start_server) for as long as the fixture lives,
    stopped afterwards even when the test failed. Use as ``yield from served(...)``."""
    running = start_server(data_dir, store_url, options, history=history)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the session; tests isolate themselves with their own namespaces."""
    yield from served(tmp_path_factory.mktemp("bosun-server"))


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A server of the test's own (for tests that restart it or break its store)."""
    yield from served(tmp_path / "server")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The whole control plane (API, scheduler, every controller) for the session; short
    node-failure timings so that lifecycle tests run in seconds."""
    options = ControlPlaneOptions(node_monitor_grace_period=4.0, pod_eviction_timeout=2.0, lease_duration=6.0)
    yield from served(tmp_path_factory.mktemp("bosun-cluster"), options=options)


@pytest.fixture
def namespace() -> str:
    """A unique namespace name; tests that use it create it."""
    return f"t-{uuid.uuid4().hex[:10]}"
