"""Directories of ended pods, containers and sandboxes, moved aside at once and deleted later.

Deleting a container's or a pod's files walks thousands of entries (a rootfs's upper layer,
logs, the runtime's state); done inline it was a sixth of the node's CPU during a rolling
update and delayed each old pod's removal from the API, and with it the place a new pod of
the next batch waits for (a node holds at most ``pods`` of them, terminating ones included).
A kubelet likewise deletes the pod object once its containers are stopped and its volumes
unmounted, and removes the directories later in its housekeeping.

So a directory is renamed into a trash directory on the same filesystem (one system call: it
is gone from where anything looks for it) and a background thread at low priority deletes
what the trash holds. Whatever a crash left in a trash is deleted when the next one starts.

The deleting itself is an ``rm`` child of that thread (it inherits the thread's nice value):
walked in Python, the agent's process spent as long in shutil.rmtree during a rolling update of
100 pods as in its event loop, taking the GIL from the loop at each of the walk's steps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)
NICE = 10
"""How much less CPU the deleting thread gets than the agent's (Linux threads have their own
nice value)."""
RM_BATCH = 256
"""Trash entries (32-character names) given to one ``rm``."""
IDLE_S = 30.0
"""The deleting thread ends after this long with nothing to delete (the next discard starts
another): a stopped agent, or a test's, leaves no thread behind for long."""


class Trash:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._busy = False  # the thread is deleting

    def discard(self, path: Path) -> None:
        """Make ``path`` disappear now and its contents later. A path on another filesystem
        than the trash (rename cannot move it) is deleted here, as before there was a trash."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            os.rename(path, self.root / uuid.uuid4().hex)
        except FileNotFoundError:
            return
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
            return
        self.empty_later()

    def empty_later(self) -> None:
        """Wake (or start) the thread that deletes what the trash holds."""
        with self._lock:  # against the thread deciding to end (see _run)
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"trash {self.root}", daemon=True)
                self._thread.start()

    def finish(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s) until what the trash holds is deleted and no deletion
        runs: a driver that closes leaves no ``rm`` of its files behind it."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._wake.set()
            deadline = time.monotonic() + timeout
            while thread.is_alive() and time.monotonic() < deadline and (self._busy or self._wake.is_set()):
                time.sleep(0.05)

    def empty(self) -> None:
        """Delete everything in the trash now (the calling thread waits for it)."""
        try:
            paths = [entry.path for entry in os.scandir(self.root)]
        except FileNotFoundError:
            return
        for i in range(0, len(paths), RM_BATCH):
            _remove(paths[i:i + RM_BATCH])

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        while True:
            if not self._wake.wait(IDLE_S):
                with self._lock:
                    if not self._wake.is_set():
                        self._thread = None
                        return
                continue
            self._busy = True
            self._wake.clear()
            try:
                self.empty()
            except OSError as e:  # never let the thread die: the next discard wakes it again
                log.warning("emptying %s: %s", self.root, e)
            finally:
                self._busy = False


def _remove(paths: list[str]) -> None:
    """``rm -rf`` in a child process (no mount crossed); in this process where rm cannot run."""
    try:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", *paths], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=600)
        return
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("rm in the trash: %s; deleting in this process", e)
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
