"""One pod's worker: drives the pod to its spec through the runtime driver.

Everything the worker decides comes from the runtime's own record of containers (listed
at every sync), never from memory alone: that is what makes an agent restart harmless
(containers are re-adopted, attempts and restart counts recovered from their labels).
Memory holds only what cannot be observed: restart back-off and probe results.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp

from bosun.agent import env as envmod
from bosun.agent import poddns, podsecurity, podspec
from bosun.agent.config import AgentConfig
from bosun.agent.poddns import ClusterDNS
from bosun.agent.podstatus import PodFacts, build_status
from bosun.agent.probes import ContainerProbes, ProbeResult
from bosun.agent.refs import ConfigError, RefFetcher
from bosun.agent.runtime.base import (
    LABEL_INIT,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    DriverError,
    ImageError,
    ImageInfo,
    RuntimeDriver,
    SandboxConfig,
    SandboxStatus,
    SecurityEnforcing,
    StartError,
)
from bosun.agent.satoken import PodTokens
from bosun.agent.serviceenv import service_env
from bosun.agent.status import PODS, RETRYABLE, StatusManager, now
from bosun.agent.trash import Trash
from bosun.agent.volumes import VolumeManager
from bosun.client.events import EventRecorder
from bosun.client.rest import Client

log = logging.getLogger(__name__)
Pod = dict[str, Any]
STABLE_RUN_SECONDS = 600.0  # a container that ran this long starts its back-off afresh
FIRST_PROBE_HOLD = 0.5
"""How long a pod's Running (not yet Ready) status may wait for the first readiness probes,
which start with the container: when they pass in time one status write says Running and
Ready (the 100-pod benchmark's probe variant: 100 patches and their watch events less)."""


class PodWorker:
    def __init__(self, pod: Pod, *, config: AgentConfig, client: Client, driver: RuntimeDriver,
                 statuses: StatusManager, recorder: EventRecorder, node_ip: str,
                 allocatable: dict[str, str], trash: Trash, start_slots: asyncio.Semaphore | None = None,
                 cluster_dns: ClusterDNS | None = None) -> None:
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.config = config
        self.client = client
        self.driver = driver
        self.statuses = statuses
        self.recorder = recorder
        self.node_ip = node_ip
        self.allocatable = allocatable
        self.cluster_dns = cluster_dns  # None: the node runs no cluster DNS (pods get the node's)
        self.pod_dir = config.pods_dir / self.uid
        self.trash = trash
        self.volumes = VolumeManager(self.pod_dir, allocatable, tokens=PodTokens(client, pod))
        self.removed = False
        self.done = False
        self._wake = asyncio.Event()
        self._wake_at: float | None = None
        self._sandbox: SandboxStatus | None = None
        self._listed: list[ContainerStatus] = []  # every attempt, as the last _containers() saw them
        self._backoff: dict[str, float] = {}
        self._waiting: dict[str, tuple[str, str]] = {}
        # container -> (image, next pull at, current delay, last error): ImagePullBackOff.
        self._pull_backoff: dict[str, tuple[str, float, float, str]] = {}
        self._probes: dict[str, ContainerProbes] = {}
        self._start_time = (pod.get("status") or {}).get("startTime") or now()
        self._terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        # The eviction message once evicted (kept across agent restarts through the status).
        self._evicted = str((pod.get("status") or {}).get("message") or "") \
            if (pod.get("status") or {}).get("reason") == "Evicted" else ""
        self._slots = start_slots
        self._slot_held = False

    # -- driving ---------------------------------------------------------------------------------

    def update(self, pod: Pod) -> None:
        """A new version of the pod. Our own status writes come back here too (one or two
        per pod start): those change nothing to drive, so they do not cost a full sync
        (which lists containers and refreshes volumes) while 100 other pods are starting."""
        old, self.pod = self.pod, pod
        if _drives(old) != _drives(pod):
            self.wake()

    def remove(self) -> None:
        self.removed = True
        self.wake()

    def wake(self, at: float | None = None) -> None:
        if at is None:
            self._wake.set()
        elif self._wake_at is None or at < self._wake_at:
            self._wake_at = at

    async def _wait(self) -> None:
        timeout = None
        if self._wake_at is not None:
            timeout = max(0.0, self._wake_at - time.time())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()
        if self._wake_at is not None and self._wake_at <= time.time():
            self._wake_at = None

    async def check_volumes(self) -> None:
        """Evict the pod when a disk emptyDir outgrew its sizeLimit, as kubelet's eviction
        manager does: the pod fails (reason Evicted) and its controller replaces it."""
        if self.done or self._terminal or self._evicted:
            return
        message = await asyncio.to_thread(self.volumes.over_limit, self.pod)
        if message:
            self._evicted = message
            self.wake()

    async def run(self) -> None:
        self._wake.set()
        try:
            while True:
                await self._wait()
                meta = self.pod.get("metadata") or {}
                if self.removed:
                    await self.terminate(1.0, delete=False)
                    return
                if meta.get("deletionTimestamp"):
                    grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                    await self.terminate(grace, delete=True)
                    return
                try:
                    await self.sync()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("pod %s/%s: sync failed", self.namespace, self.name)
                    self.wake(time.time() + 1.0)
        finally:
            for p in self._probes.values():
                await p.stop()
            self.done = True

    # -- sync --------------------------------------------------------------------------------------

    async def _containers(self) -> tuple[dict[str, ContainerStatus], dict[str, ContainerStatus]]:
        """(latest, previous) attempt of each container name."""
        latest: dict[str, ContainerStatus] = {}
        previous: dict[str, ContainerStatus] = {}
        self._listed = await self.driver.list_containers(self.uid)
        for st in sorted(self._listed, key=lambda s: s.attempt):
            if st.name in latest:
                previous[st.name] = latest[st.name]
            latest[st.name] = st
        return latest, previous

    async def _ensure_sandbox(self) -> SandboxStatus:
        if self._sandbox is not None and self._sandbox.ready:
            return self._sandbox
        pod = self.pod
        spec = pod.get("spec") or {}
        hostname = podspec.hostname(pod)
        fqdn = poddns.pod_fqdn(pod, hostname, self.cluster_dns.domain) if self.cluster_dns else ""
        self._sandbox = await self.driver.run_sandbox(SandboxConfig(
            pod_uid=self.uid, pod_name=self.name, namespace=self.namespace, hostname=hostname, fqdn=fqdn,
            pod_dir=self.pod_dir, host_network=bool(spec.get("hostNetwork")), host_ipc=bool(spec.get("hostIPC")),
            share_pid=bool(spec.get("shareProcessNamespace")) and not spec.get("hostPID"), ports=podspec.ports(pod),
            dns=poddns.dns_config(pod, poddns.node_dns(), self.cluster_dns), host_aliases=podspec.host_aliases(pod),
            resources=podspec.pod_resources(pod),
            labels={LABEL_POD_UID: self.uid, LABEL_POD_NAME: self.name, LABEL_POD_NAMESPACE: self.namespace}))
        return self._sandbox

    async def sync(self) -> None:
        """The first sync of a pod (sandbox, network, first containers) runs in one of a few
        node-wide start slots: 100 pods created at once then come up a group at a time,
        each in a fraction of the time, instead of all advancing step by step together and
        all turning Running at the very end (same total, much lower median)."""
        if self._slots is None or self._sandbox is not None or self._terminal:
            await self._sync()
            return
        async with self._slots:
            self._slot_held = True
            try:
                await self._sync()
            finally:
                self._slot_held = False

    async def _ensure_image(self, image_name: str, c: dict[str, Any]) -> ImageInfo:
        """A pull can take minutes: the start slot is given back meanwhile (but not for an
        image already here, or the pod would queue again behind every waiting pod)."""
        task = asyncio.ensure_future(self.driver.ensure_image(image_name, podspec.pull_policy(c)))
        try:
            done, _ = await asyncio.wait({task}, timeout=0.1)
            if done or not self._slot_held or self._slots is None:
                return await task
            self._slots.release()
            try:
                return await task
            finally:
                await self._slots.acquire()
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def _sync(self) -> None:
        spec = self.pod.get("spec") or {}
        policy = spec.get("restartPolicy") or "Always"
        latest, previous = await self._containers()
        if self._evicted and not self._terminal:
            self.recorder.event(self.pod, "Warning", "Evicted", self._evicted)
            self._terminal = True
            self._waiting.clear()
            await self._stop_all(latest, self._grace())
            latest, previous = await self._containers()
        if self._terminal:
            await self._stop_all(latest, 0)
            self._publish(latest, previous, init_ok=True)
            return
        refs = RefFetcher(self.client, self.namespace)
        sandbox = await self._ensure_sandbox()
        try:
            paths = await self.volumes.prepare(self.pod, refs)
        except ConfigError as e:
            self.recorder.event(self.pod, "Warning", "FailedMount", f"MountVolume.SetUp failed: {e}")
            for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
                self._waiting.setdefault(c["name"], ("ContainerCreating", ""))
            self.wake(time.time() + 2.0)
            self._publish(latest, previous, init_ok=False)
            return
        self.wake(time.time() + 10.0)  # refresh configMap/secret volumes now and then
        init_ok = True
        for c in spec.get("initContainers") or []:
            st = latest.get(c["name"])
            if st is not None and st.state == ContainerState.EXITED and st.exit_code == 0:
                continue
            init_ok = False
            if st is None:
                await self._start(c, sandbox, paths, refs, init=True)
            elif st.state == ContainerState.EXITED:
                if policy == "Never":
                    self._terminal = True
                else:
                    await self._restart(c, st, sandbox, paths, refs, init=True)
            break
        if init_ok:
            for c in spec.get("containers") or []:
                st = latest.get(c["name"])
                if st is None:
                    await self._start(c, sandbox, paths, refs, init=False)
                elif st.state == ContainerState.RUNNING:
                    await self._check_probes(c, st)
                elif st.state == ContainerState.EXITED and _should_restart(policy, st):
                    await self._restart(c, st, sandbox, paths, refs, init=False)
            for c in spec.get("ephemeralContainers") or []:
                if c["name"] not in latest:  # started once, never restarted
                    await self._start_ephemeral(c, latest, sandbox, paths, refs)
        latest, previous = await self._containers()
        self._manage_probes(latest)
        await self._gc(latest)
        phase = self._publish(latest, previous, init_ok=init_ok)
        if phase in ("Succeeded", "Failed"):
            self._terminal = True
            await self._stop_all(latest, 0)

    async def _start_ephemeral(self, c: dict[str, Any], latest: dict[str, ContainerStatus], sandbox: SandboxStatus,
                               paths: dict[str, Path], refs: RefFetcher) -> None:
        """A debug container (``kubectl debug``), in its target's process namespace if it names one."""
        target = str(c.get("targetContainerName") or "")
        st = latest.get(target) if target else None
        if target and (st is None or st.state != ContainerState.RUNNING):
            self._waiting[c["name"]] = ("ContainerCreating", f"waiting for target container {target} to run")
            self.wake(time.time() + 1.0)
            return
        await self._start(c, sandbox, paths, refs, init=False, pid_target=st.id if st is not None else "")

    async def _start(self, c: dict[str, Any], sandbox: SandboxStatus, paths: dict[str, Path],
                     refs: RefFetcher, *, init: bool, attempt: int = 0, pid_target: str = "") -> None:
        name = c["name"]
        image_name = str(c.get("image") or "")
        pulling = self._pull_backoff.get(name)
        if pulling is not None and pulling[0] == image_name and time.time() < pulling[1]:
            if self._waiting.get(name, ("",))[0] != "ImagePullBackOff":
                self.recorder.event(self.pod, "Normal", "BackOff", f'Back-off pulling image "{image_name}"')
                self.recorder.event(self.pod, "Warning", "Failed", "Error: ImagePullBackOff")
            self._waiting[name] = ("ImagePullBackOff", f'Back-off pulling image "{image_name}": {pulling[3]}')
            self.wake(pulling[1])
            return
        try:
            image = await self._ensure_image(image_name, c)
        except ImageError as e:
            self._waiting[name] = (e.reason, e.message)
            self.recorder.event(self.pod, "Warning", "Failed", f'Failed to pull image "{image_name}": {e}')
            self.recorder.event(self.pod, "Warning", "Failed", f"Error: {e.reason}")
            delay = self._next_pull_backoff(name, image_name)
            self._pull_backoff[name] = (image_name, time.time() + delay, delay, f"{e.reason}: {e.message}")
            self.wake(time.time() + min(1.0, delay))  # then ImagePullBackOff until the retry
            return
        self._pull_backoff.pop(name, None)
        try:
            links = await service_env(self.client, self.pod)
            env, command, args = await envmod.resolve(self.pod_with_ips(sandbox), c, refs, self.allocatable, links)
            mounts = self.volumes.mounts(c, paths)
            security = podsecurity.security_config(c, self.pod, self.config.seccomp_dir)
            security.pid_target = pid_target
            ignored = [] if isinstance(self.driver, SecurityEnforcing) else podsecurity.unapplied(security)
            if ignored and name not in self._backoff:  # said once per container, not at every restart
                self.recorder.event(self.pod, "Warning", "SecurityContextNotApplied",
                                    f"the {self.driver.name} runtime runs container {name} as a host process: "
                                    f"{', '.join(ignored)} not applied (use the oci runtime)")
            refused = podsecurity.non_root_error(c, self.pod, image.user)
            if refused:
                raise ConfigError(refused)
        except (ConfigError, ValueError) as e:
            self._waiting[name] = ("CreateContainerConfigError", str(e))
            self.recorder.event(self.pod, "Warning", "Failed", f"Error: {e}")
            self.wake(time.time() + 2.0)
            return
        log_path = self.pod_dir / "logs" / name / f"{attempt}.log"
        cfg = ContainerConfig(
            name=name, pod_uid=self.uid, attempt=attempt, image=str(c.get("image") or ""), command=command,
            args=args, env=env, working_dir=str(c.get("workingDir") or ""), mounts=mounts,
            resources=podspec.container_resources(c), security=security, log_path=log_path,
            log_max_bytes=self.config.container_log_max_bytes, log_max_files=self.config.container_log_max_files,
            tty=bool(c.get("tty")), stdin=bool(c.get("stdin")), stdin_once=bool(c.get("stdinOnce")),
            labels={LABEL_POD_NAME: self.name, LABEL_POD_NAMESPACE: self.namespace,
                    LABEL_INIT: "true" if init else "false"})
        self._waiting.pop(name, None)
        try:
            cid = await self.driver.create_container(sandbox, cfg, image)
        except (StartError, DriverError) as e:
            # kubelet's CreateContainerError: nothing was made (a missing device, a bad profile).
            self._waiting[name] = ("CreateContainerError", e.message)
            self.recorder.event(self.pod, "Warning", "Failed", f"Error: {e.message}")
            self.wake(time.time() + 2.0)
            return
        try:
            self.recorder.event(self.pod, "Normal", "Created", f"Created container {name}")
            await self.driver.start_container(cid)
            self.recorder.event(self.pod, "Normal", "Started", f"Started container {name}")
        except (StartError, DriverError) as e:
            self.recorder.event(self.pod, "Warning", "Failed", f"Error: {e.message}")
            self.wake(time.time() + 0.05)

    def pod_with_ips(self, sandbox: SandboxStatus) -> Pod:
        """The pod as the downward API sees it: with the IPs it is about to be given."""
        pod = dict(self.pod)
        status = dict(pod.get("status") or {})
        status.update({"podIP": sandbox.ip, "podIPs": [{"ip": i} for i in sandbox.ips],
                       "hostIP": self.node_ip, "hostIPs": [{"ip": self.node_ip}]})
        pod["status"] = status
        return pod

    def _next_pull_backoff(self, name: str, image: str) -> float:
        """10 s, 20 s, 40 s... up to 5 min between pulls of an image that failed."""
        prev = self._pull_backoff.get(name)
        if prev is None or prev[0] != image:
            return self.config.image_backoff_base
        return min(self.config.image_backoff_max, prev[2] * 2)

    async def _restart(self, c: dict[str, Any], st: ContainerStatus, sandbox: SandboxStatus,
                       paths: dict[str, Path], refs: RefFetcher, *, init: bool) -> None:
        name = c["name"]
        if st.finished_at and st.started_at and st.finished_at - st.started_at > STABLE_RUN_SECONDS:
            self._backoff.pop(name, None)
        delay = self._backoff.get(name, 0.0)
        ready_at = st.finished_at + delay
        if time.time() < ready_at:
            msg = (f"back-off {delay:g}s restarting failed container={name} "
                   f"pod={self.name}_{self.namespace}({self.uid})")
            if self._waiting.get(name, ("",))[0] != "CrashLoopBackOff":
                self.recorder.event(self.pod, "Warning", "BackOff", "Back-off restarting failed container "
                                    f"{name} in pod {self.name}_{self.namespace}({self.uid})")
            self._waiting[name] = ("CrashLoopBackOff", msg)
            self.wake(ready_at)
            return
        self._backoff[name] = min(self.config.backoff_max, delay * 2 if delay else self.config.backoff_base)
        self._waiting.pop(name, None)
        await self._start(c, sandbox, paths, refs, init=init, attempt=st.attempt + 1)

    # -- probes ------------------------------------------------------------------------------------

    def _manage_probes(self, latest: dict[str, ContainerStatus]) -> None:
        running = {st.id: st for st in latest.values() if st.state == ContainerState.RUNNING}
        for cid in list(self._probes):
            if cid not in running:
                probes = self._probes.pop(cid)
                asyncio.get_running_loop().create_task(probes.stop())
        spec_by_name = {c["name"]: c for c in (self.pod.get("spec") or {}).get("containers") or []}
        for cid, st in running.items():
            c = spec_by_name.get(st.name)
            if c is None or cid in self._probes:
                continue
            if not any(k in c for k in ("livenessProbe", "readinessProbe", "startupProbe")):
                continue
            ip = self._sandbox.ip if self._sandbox else self.node_ip
            probes = ContainerProbes(c, cid, ip, self.driver,
                                     functools.partial(self._probe_changed, st.name))
            self._probes[cid] = probes
            probes.start()

    def _probe_changed(self, name: str, kind: str, result: ProbeResult) -> None:
        if not result.ok:
            what = {"livenessProbe": "Liveness", "readinessProbe": "Readiness", "startupProbe": "Startup"}[kind]
            self.recorder.event(self.pod, "Warning", "Unhealthy", f"{what} probe failed: {result.message}")
        self.wake()

    async def _check_probes(self, c: dict[str, Any], st: ContainerStatus) -> None:
        probes = self._probes.get(st.id)
        if probes is None or probes.failure is None:
            return
        kind, _msg = probes.failure
        self.recorder.event(self.pod, "Normal", "Killing",
                            f"Container {c['name']} failed {kind.lower()} probe, will be restarted")
        await probes.stop()
        self._probes.pop(st.id, None)
        await self._kill(c, st, self._grace(c))

    def _grace(self, c: dict[str, Any] | None = None) -> float:
        spec = self.pod.get("spec") or {}
        return float(spec.get("terminationGracePeriodSeconds", 30))

    def stop_grace(self) -> float:
        """The pod's grace period when its node stops: the deletion's when it is being
        deleted (which may be shorter), its ``terminationGracePeriodSeconds`` otherwise."""
        meta = self.pod.get("metadata") or {}
        if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") is not None:
            return min(self._grace(), float(meta["deletionGracePeriodSeconds"]))
        return self._grace()

    # -- stopping ----------------------------------------------------------------------------------

    async def _kill(self, c: dict[str, Any] | None, st: ContainerStatus, grace: float) -> None:
        """preStop hook, then SIGTERM, SIGKILL after what is left of ``grace``."""
        deadline = time.monotonic() + grace
        pre = ((c or {}).get("lifecycle") or {}).get("preStop")
        if pre and grace > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._hook(pre, c or {}, st)
        remaining = max(0.0, deadline - time.monotonic())
        if pre and grace > 0:
            remaining = max(remaining, 2.0)  # Kubernetes' minimum after a preStop hook overran
        await self.driver.stop_container(st.id, remaining)

    async def _hook(self, hook: dict[str, Any], c: dict[str, Any], st: ContainerStatus) -> None:
        try:
            if "exec" in hook:
                proc = await self.driver.exec(st.id, [str(a) for a in hook["exec"].get("command") or []])
                await proc.stdout.read()
                await proc.wait()
            elif "httpGet" in hook:
                spec = hook["httpGet"]
                host = spec.get("host") or (self._sandbox.ip if self._sandbox else self.node_ip)
                port = podspec.find_port(c, spec.get("port") or 80)
                url = f"{str(spec.get('scheme') or 'http').lower()}://{host}:{port}{spec.get('path') or '/'}"
                async with aiohttp.ClientSession() as s, s.get(url, ssl=False) as resp:
                    await resp.read()
            elif "sleep" in hook:
                await asyncio.sleep(float(hook["sleep"].get("seconds") or 0))
        except (DriverError, aiohttp.ClientError, OSError, ValueError) as e:
            self.recorder.event(self.pod, "Warning", "FailedPreStopHook", f"PreStopHook failed: {e}")

    async def _stop_all(self, latest: dict[str, ContainerStatus], grace: float) -> None:
        specs = {c["name"]: c for c in [*((self.pod.get("spec") or {}).get("initContainers") or []),
                                        *((self.pod.get("spec") or {}).get("containers") or [])]}
        live = [st for st in latest.values() if st.state in (ContainerState.RUNNING, ContainerState.CREATED)]
        for st in live:
            self.recorder.event(self.pod, "Normal", "Killing", f"Stopping container {st.name}")
        await asyncio.gather(*(self._kill(specs.get(st.name), st, grace) for st in live))

    async def terminate(self, grace: float, *, delete: bool) -> None:
        """Stop everything of the pod, clean up, and (when asked) delete the pod object."""
        for p in list(self._probes.values()):
            await p.stop()
        self._probes.clear()
        latest, previous = await self._containers()
        await self._stop_all(latest, grace)
        latest, previous = await self._containers()
        if delete:
            status = self._build(latest, previous, init_ok=True, final=True)
            with contextlib.suppress(*RETRYABLE):
                await self.statuses.write_now(self.namespace, self.name, self.uid, status)
        for st in await self.driver.list_containers(self.uid):
            await self.driver.remove_container(st.id)
        with contextlib.suppress(DriverError):
            await self.driver.stop_sandbox(self.uid)
            await self.driver.remove_sandbox(self.uid)
        await asyncio.to_thread(self._remove_files)
        self.statuses.forget(self.uid)
        if delete:
            try:
                await self.client.delete(PODS, self.name, self.namespace, grace_period_seconds=0,
                                         preconditions={"uid": self.uid})
            except RETRYABLE as e:
                log.info("pod %s/%s: final delete: %s", self.namespace, self.name, e)

    def _remove_files(self) -> None:
        """Volumes unmounted (tmpfs) and the pod's directory moved to the trash, which deletes
        it later: in a thread, since 100 pods stopping at once unmount together."""
        self.volumes.unmount(self.pod)
        self.trash.discard(self.pod_dir)

    async def _gc(self, latest: dict[str, ContainerStatus]) -> None:
        """Keep the latest and the previous attempt of each container (for logs --previous).
        Called right after :meth:`_containers`, whose listing it reuses."""
        for st in self._listed:
            cur = latest.get(st.name)
            if cur is not None and st.attempt < cur.attempt - 1 and st.state == ContainerState.EXITED:
                await self.driver.remove_container(st.id)
                for f in (self.pod_dir / "logs" / st.name).glob(f"{st.attempt}.log*"):
                    f.unlink(missing_ok=True)

    # -- status ------------------------------------------------------------------------------------

    def _publish(self, latest: dict[str, ContainerStatus], previous: dict[str, ContainerStatus], *,
                 init_ok: bool) -> str:
        status = self._build(latest, previous, init_ok=init_ok)
        hold = FIRST_PROBE_HOLD if self._first_probes_due(latest, status) else 0.0
        self.statuses.set(self.namespace, self.name, self.uid, status, hold=hold)
        return str(status["phase"])

    def _first_probes_due(self, latest: dict[str, ContainerStatus], status: dict[str, Any]) -> bool:
        """Running but not Ready only until the first readiness probes, about to run, report."""
        unready = [s["name"] for s in status.get("containerStatuses") or [] if not s["ready"]]
        if status["phase"] != "Running" or not unready:
            return False
        for name in unready:
            st = latest.get(name)
            probes = self._probes.get(st.id) if st is not None else None
            if probes is None or not probes.first_readiness_due:
                return False
        return True

    def _build(self, latest: dict[str, ContainerStatus], previous: dict[str, ContainerStatus], *,
               init_ok: bool, final: bool = False) -> dict[str, Any]:
        facts = PodFacts(pod=self.pod, runtime=self.driver.name, node_ip=self.node_ip,
                         pod_ip=self._sandbox.ip if self._sandbox else self.node_ip,
                         sandbox_ready=self._sandbox is not None, start_time=self._start_time,
                         waiting=self._waiting, probes=self._probes, terminal=self._terminal, evicted=self._evicted)
        return build_status(facts, latest, previous, init_ok=init_ok, final=final)


_NOT_DRIVING = ("resourceVersion", "managedFields", "generation")


def _drives(pod: Pod) -> tuple[Any, Any]:
    """What the worker acts on: the spec and metadata (deletion, labels and annotations for
    the downward API), not the status nor the object's version."""
    meta = {k: v for k, v in (pod.get("metadata") or {}).items() if k not in _NOT_DRIVING}
    return meta, pod.get("spec")


def _should_restart(policy: str, st: ContainerStatus) -> bool:
    return policy == "Always" or (policy == "OnFailure" and st.exit_code != 0)
