"""Fixtures for the integration tests (the servers themselves are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from tests.conftest import RunningServer

from bosun.client import Client


@pytest.fixture
async def client(api_server: RunningServer) -> AsyncIterator[Client]:
    """A client of the session's API server. Files whose tests need more (a control plane of
    their own, a namespace made for them) define their own ``client``, which wins."""
    async with Client.from_kubeconfig(api_server.kubeconfig) as c:
        yield c


@pytest.fixture
def servers() -> Iterator[list[RunningServer]]:
    """Servers a test starts (append them); all stopped at the end, even on failure."""
    running: list[RunningServer] = []
    try:
        yield running
    finally:
        for srv in running:
            srv.stop()
