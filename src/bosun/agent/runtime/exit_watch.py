"""Container statuses kept until the container's shim exits, told by the kernel (a pidfd).

Why a module: the oci and process drivers read a container's status from its files (pid
files, ``exit.json``, the shim's liveness in /proc): five or six file reads that 100 pods'
workers and the agent's relist repeated every second, the agent's largest CPU share. Yet a
container that runs changes state only when its shim ends (the shim writes ``exit.json``
and exits; or it is killed and the outcome is lost), and one that ended never changes again.
So a running container's status is kept while a pidfd of its shim is registered with the
event loop, an ended one for good; the pidfd's readiness drops the kept status and tells
:meth:`ExitWatch.changed` which pod to look at. Where no pidfd can be had (an old kernel),
nothing is kept and ``changed`` falls back to a poll, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os

from bosun.agent.runtime.base import ContainerState, ContainerStatus
from bosun.agent.runtime.shim import proc_starttime

log = logging.getLogger(__name__)
FALLBACK_POLL_S = 1.0
"""How often ``changed`` reports pods with a running container whose shim is not watched."""


class ExitWatch:
    def __init__(self) -> None:
        self._kept: dict[str, ContainerStatus] = {}
        self._fds: dict[str, tuple[int, asyncio.AbstractEventLoop]] = {}
        self._unwatched: dict[str, str] = {}  # container id -> pod uid: running, no pidfd
        self._changed: set[str] = set()
        self._fresh: set[str] = set()  # started here, neither watched nor seen ended since
        self._wake: asyncio.Event | None = None
        self._no_pidfd = not hasattr(os, "pidfd_open")
        self._closed = False

    def get(self, cid: str) -> ContainerStatus | None:
        """The kept status of ``cid`` (None: read it from its files). Callers must not change it."""
        return self._kept.get(cid)

    def keep_exited(self, st: ContainerStatus) -> None:
        """``st`` is final (its shim wrote ``exit.json``): kept until the container is removed.

        The end of a container started here that no pidfd watched (it ended before any read
        found it running: ``sh -c 'exit 3'`` between its start and the worker's listing) is
        reported by :meth:`changed` all the same, or the pod's worker, which may have read it
        after deciding what to do, would not look again until its next timer."""
        self._unwatch(st.id)
        self._kept[st.id] = st
        if st.id in self._fresh:
            self._fresh.discard(st.id)
            self._report(st.pod_uid)

    def keep_running(self, st: ContainerStatus, shim_pid: int, shim_starttime: str | None) -> None:
        """``st`` (running) is kept while the shim ``shim_pid`` lives. ``shim_starttime``
        proves the pid is still that shim (None: our own unreaped child, whose pid cannot be
        reused). If the shim cannot be watched the status is not kept and the pod is polled."""
        if self._watch(st.id, st.pod_uid, shim_pid, shim_starttime):
            self._unwatched.pop(st.id, None)
            self._fresh.discard(st.id)  # the pidfd tells its end
            self._kept[st.id] = st
        else:
            self._unwatched[st.id] = st.pod_uid

    def forget(self, cid: str) -> None:
        """Drop what is known of ``cid`` (started, stopped or removed by the driver itself)."""
        self._kept.pop(cid, None)
        self._unwatched.pop(cid, None)
        self._fresh.discard(cid)
        self._unwatch(cid)

    def started(self, cid: str) -> None:
        """``cid`` was just started by the driver: its end is told, by a pidfd or else by the
        first read that finds it ended (see :meth:`keep_exited`)."""
        self.forget(cid)
        self._fresh.add(cid)

    async def changed(self) -> set[str]:
        """Wait until the shim of a kept running container ended; the uids of those pods.
        With running containers that could not be watched, returns their pods at least
        every :data:`FALLBACK_POLL_S` seconds."""
        if self._wake is None:
            self._wake = asyncio.Event()
        if not self._changed:
            try:
                async with asyncio.timeout(FALLBACK_POLL_S if self._unwatched else None):
                    await self._wake.wait()
            except TimeoutError:
                return set(self._unwatched.values())
        self._wake.clear()
        out, self._changed = self._changed, set()
        return out

    def close(self) -> None:
        """Unregister every pidfd (the driver closes): nothing is watched or kept from now on."""
        self._closed = True
        for cid in list(self._fds):
            self._unwatch(cid)
        self._kept.clear()
        self._unwatched.clear()
        self._fresh.clear()

    def _watch(self, cid: str, pod_uid: str, pid: int, starttime: str | None) -> bool:
        if cid in self._fds:
            return True
        if self._closed or self._no_pidfd or pid <= 0:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False  # called from a worker thread: read again next time
        try:
            fd = os.pidfd_open(pid)
        except OSError as e:
            if e.errno in (errno.ENOSYS, errno.EPERM):
                log.info("no pidfd (%s): container exits are polled", e)
                self._no_pidfd = True
            return False  # ESRCH: already gone, the next read sees it ended
        if starttime is not None and proc_starttime(pid) != starttime:
            os.close(fd)  # the shim ended and its pid was reused before we opened it
            return False
        loop.add_reader(fd, self._fired, cid, pod_uid)
        self._fds[cid] = (fd, loop)
        return True

    def _unwatch(self, cid: str) -> None:
        entry = self._fds.pop(cid, None)
        if entry is None:
            return
        fd, loop = entry
        if not loop.is_closed():
            loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)

    def _fired(self, cid: str, pod_uid: str) -> None:
        """The shim of ``cid`` exited: what was kept of it is stale."""
        st = self._kept.get(cid)
        if st is None or st.state != ContainerState.EXITED:
            self._kept.pop(cid, None)
        self._unwatch(cid)
        self._report(pod_uid)

    def _report(self, pod_uid: str) -> None:
        self._changed.add(pod_uid)
        if self._wake is not None:
            self._wake.set()
