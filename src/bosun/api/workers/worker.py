"""One API worker process: ``python -m bosun.api.workers.worker CHANNEL_FD HANDOFF_FD LEVEL INDEX``.

Started only by :class:`~bosun.api.workers.pool.WorkerPool`. It serves the API on the
connections its owner hands it (:mod:`.handoff`) until the pool sends SIGTERM or its store owner is gone (then the
channel closes and it exits at once: a worker never outlives its server). SIGINT is ignored:
a Ctrl-C reaches the whole process group, and the server stops its workers itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys

from bosun.aio import cancel_and_wait, tune_gc
from bosun.api import errors
from bosun.api.server import APIServer, ServerConfig
from bosun.api.workers.handoff import Receiver
from bosun.api.workers.metricspeers import push_forever, worker_peers
from bosun.api.workers.remotestore import RemoteStore
from bosun.api.workers.wire import read_frame
from bosun.monitoring.serving import Answer, Forward
from bosun.store import is_etcd
from bosun.store.base import UnavailableError

log = logging.getLogger(__name__)


def to_owner(remote: RemoteStore) -> Forward:
    """Monitoring requests answered by the owner, which keeps the one metrics history."""

    async def forward(method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]) -> Answer:
        try:
            status, out, body = await remote.call("monitoring", method, path, query, headers)
        except UnavailableError as exc:
            raise errors.unavailable(f"the metrics history is kept by the server process: {exc}") from exc
        return status, out, body

    return forward


async def serve(channel_fd: int, handoff_fd: int, index: int) -> None:
    channel = socket.socket(fileno=channel_fd)
    reader, writer = await asyncio.open_unix_connection(sock=channel)
    config = await read_frame(reader)
    assert isinstance(config, ServerConfig)
    remote = RemoteStore(reader, writer)
    # On etcd a worker is one more kube-apiserver on the same cluster; on SQLite the file has
    # one writer, the owner, reached through the channel.
    store = None if is_etcd(config.store_url) else remote
    api = APIServer(config, store=store, sockets=[], forward=to_owner(remote))
    receiver = Receiver(socket.socket(fileno=handoff_fd), api.serve_accepted)
    pushing: asyncio.Task[None] | None = None
    try:
        await api.start()
        receiver.start()
        assert api.instruments is not None
        api.instruments.peers = worker_peers(remote.call, index)
        pushing = asyncio.create_task(push_forever(remote.call, index, api.instruments.exposition),
                                      name="metrics-push")
        tune_gc()
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        stopping = asyncio.create_task(stop.wait())
        orphaned = asyncio.create_task(remote.lost.wait())
        await asyncio.wait([stopping, orphaned], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        orphaned.cancel()
        if remote.lost.is_set() and not stop.is_set():
            log.error("API worker: the server process is gone; exiting")
    finally:
        await cancel_and_wait(pushing)
        receiver.close()
        await api.stop()
        if store is None:
            await remote.close()


def main(argv: list[str]) -> None:
    channel_fd, handoff_fd, level, index = int(argv[1]), int(argv[2]), argv[3], argv[4]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=level.upper(),
                        format=f"%(asctime)s %(levelname)s api-worker-{index} %(name)s: %(message)s")
    try:
        import uvloop

        uvloop.run(serve(channel_fd, handoff_fd, int(index)))
    except ImportError:  # pragma: no cover - uvloop is optional
        asyncio.run(serve(channel_fd, handoff_fd, int(index)))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(sys.argv)
