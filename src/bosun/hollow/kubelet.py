"""The pod half of a hollow kubelet: pods bound to hollow nodes run at once, without containers.

One cluster-wide pod informer (only bound pods: ``spec.nodeName!=``) feeds a deduplicating
work queue drained by a bounded number of workers. Many events for one pod collapse into one
status write, and the number of writes in flight is fixed, so 10,000 pods becoming Running
cost 10,000 writes at the API server's pace, not 10,000 simultaneous requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api.registry import Resource, by_plural
from bosun.client.informer import Informer, object_key
from bosun.client.rest import ApiError, Client
from bosun.client.workqueue import WorkQueue, run_workers
from bosun.hollow.http import LeanHttp
from bosun.hollow.nodes import node_ip, pod_ip, rfc3339
from bosun.hollow.podstatus import is_running, running_status, succeeded_status

log = logging.getLogger(__name__)
Obj = dict[str, Any]

_pods = by_plural("", "v1", "pods")
assert _pods is not None
PODS: Resource = _pods


def _split(key: str) -> tuple[str, str]:
    ns, _, name = key.partition("/")
    return ns, name


def _started_at(pod: Obj) -> float | None:
    """When the pod started, on this process's wall clock (for a restarted hollow process)."""
    value = (pod.get("status") or {}).get("startTime")
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class PodRunner:
    """Marks pods on ``nodes`` Running+Ready, finishes run-to-completion pods, and completes
    graceful deletions as a kubelet does once containers have stopped."""

    def __init__(self, client: Client, nodes: Mapping[str, int], *, pod_runtime: float = 1.0,
                 workers: int = 32, http: LeanHttp | None = None) -> None:
        self.client = client
        # Status writes go over lean connections; None: made (and closed) by this runner.
        self._own_http = http is None
        self.http = http or LeanHttp(client.config, connections=workers)
        self.nodes = nodes  # name -> index (for the node's fake addresses)
        self.pod_runtime = pod_runtime
        self.workers = max(1, workers)
        self.informer = Informer(client, PODS, field_selector="spec.nodeName!=")
        self.queue = WorkQueue()
        # Finishing graceful deletions has its own queue and workers: a rolling update hands a
        # kubelet thousands of pods to stop and to start at once, and in one FIFO the starts
        # (which the rollout waits for) queued behind the stops (which nothing waits for).
        self.deletions = WorkQueue()
        self._delete_task: asyncio.Task[None] | None = None
        self._ip_seq: dict[str, int] = {}
        # uid -> wall-clock start, for pods this process reported Running (the informer may
        # still hold the pre-patch copy when the key comes round again).
        self._started: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.started = 0
        self.completed = 0
        self.deleted = 0
        self.informer.add_handler(self._on_add, self._on_update, self._on_delete)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, sync_timeout: float = 120.0) -> None:
        await self.informer.start()
        await self.informer.wait_synced(sync_timeout)
        self._task = asyncio.create_task(run_workers(self.queue, self.reconcile, self.workers),
                                         name="hollow-pod-workers")
        self._delete_task = asyncio.create_task(
            run_workers(self.deletions, self.reconcile, max(1, self.workers // 2)), name="hollow-pod-deleters")

    async def stop(self) -> None:
        self.queue.shutdown()
        self.deletions.shutdown()
        await cancel_and_wait(self._task)
        await cancel_and_wait(self._delete_task)
        self._task = self._delete_task = None
        await self.informer.stop()
        if self._own_http:
            await self.http.close()

    # -- events ---------------------------------------------------------------------------------

    def _mine(self, pod: Obj) -> bool:
        return (pod.get("spec") or {}).get("nodeName") in self.nodes

    def _on_add(self, pod: Obj) -> None:
        if self._mine(pod):
            queue = self.deletions if (pod.get("metadata") or {}).get("deletionTimestamp") else self.queue
            queue.add(object_key(pod))

    def _on_update(self, old: Obj, new: Obj) -> None:
        # The echo of this runner's own status write (the commonest update by far) leaves
        # nothing to do for a pod that runs until deleted: skip the queue round.
        if (not (new.get("metadata") or {}).get("deletionTimestamp")
                and (new.get("spec") or {}).get("restartPolicy", "Always") == "Always" and is_running(new)):
            return
        self._on_add(new)

    def _on_delete(self, pod: Obj) -> None:
        self._started.pop(str((pod.get("metadata") or {}).get("uid")), None)

    # -- the sync of one pod --------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        pod = self.informer.get_by_key(key)
        if pod is None or not self._mine(pod):
            return
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        ns, name = _split(key)
        if meta.get("deletionTimestamp"):
            await self._delete(ns, name, uid)
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            self._started.pop(uid, None)
            return
        if uid not in self._started and not is_running(pod):
            status = await self._run(pod, ns, name, uid)
            if status is None:
                return
            # The cached copy predates the write; completion must build on what was written.
            pod = {**pod, "status": {**(pod.get("status") or {}), **status}}
        if (pod.get("spec") or {}).get("restartPolicy", "Always") != "Always":
            began = self._started.get(uid) or _started_at(pod) or time.time()
            left = began + self.pod_runtime - time.time()
            if left > 0:
                self.queue.add_after(key, left)
                return
            await self._patch_status(ns, name, succeeded_status(pod, rfc3339()))
            self._started.pop(uid, None)
            self.completed += 1

    async def _run(self, pod: Obj, ns: str, name: str, uid: str) -> Obj | None:
        node = str(pod["spec"]["nodeName"])
        index = self.nodes[node]
        seq = self._ip_seq.get(node, 0)
        self._ip_seq[node] = seq + 1
        now = time.time()
        status = running_status(pod, node_ip(index), pod_ip(index, seq), rfc3339())
        if not await self._patch_status(ns, name, status):
            return None
        self._started[uid] = now
        self.started += 1
        return status

    async def _patch_status(self, ns: str, name: str, status: Obj) -> bool:
        try:
            await self.http.patch(f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": status})
            return True
        except ApiError as e:
            if e.status == 404:
                return False  # deleted meanwhile: nothing left to report on
            raise

    async def _delete(self, ns: str, name: str, uid: str) -> None:
        try:
            await self.client.delete(PODS, name, ns, grace_period_seconds=0,
                                     preconditions={"uid": uid} if uid else None)
            self.deleted += 1
        except ApiError as e:
            if e.status not in (404, 409):
                raise
        self._started.pop(uid, None)
