"""The runtime driver contract: the only thing the agent knows about how containers run.

The agent turns a pod spec into these plain dataclasses (everything already resolved:
env values, volume host paths, cgroup numbers), so a driver never reads the Kubernetes API
and can be tested alone. Like the CRI, the contract is sandbox-then-containers: the sandbox
holds what containers of one pod share (network namespace and IP, hostname, /etc/hosts,
resolv.conf, the pod cgroup); containers come and go inside it.

Drivers must survive an agent restart: containers keep running when the agent exits, and
``list_sandboxes``/``list_containers`` find them again from what the driver left on disk
(labels carry the pod uid and container name). Nothing is kept only in memory.

Log files (``ContainerConfig.log_path``) use the CRI log format, one line per chunk::

    2024-01-02T03:04:05.123456789Z stdout F the text

(``F`` = full line, ``P`` = partial line continued by the next record), so the agent's log
server reads one format whatever the driver. Files are rotated by size (``<log>.1`` is the
newest rotated one); the live file keeps its name. :mod:`bosun.agent.runtime.shim` writes it and
can be reused by any driver that starts a child process.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

# Labels every driver stores with a sandbox/container so that the agent can re-adopt it.
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_ATTEMPT = "io.bosun.container.attempt"
LABEL_INIT = "io.bosun.container.init"

# The pseudo-image that means "the host's own userland" (no image to pull).
HOST_IMAGE = "host"


class PullPolicy(enum.StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class ContainerState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


class DriverError(Exception):
    """A driver failure with a message meant for the pod's status (kubectl describe)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ImageError(DriverError):
    """An image could not be made available.

    ``reason`` is what Kubernetes shows as the waiting reason: ``ErrImagePull``,
    ``ErrImageNeverPull`` or ``InvalidImageName``; ``message`` says what to fix
    ("image \"nope:1\" not found in registry localhost:5000").
    """


class StartError(DriverError):
    """The container could not be started (command not found, bad mount...).

    The agent reports it as terminated with reason ``StartError`` and exit code 128,
    as containerd does, and restarts it under the pod's restartPolicy.
    """

    def __init__(self, message: str) -> None:
        super().__init__("StartError", message)


@dataclass
class ImageInfo:
    """What the image asks for when the pod spec leaves it out (CRI merges the same way)."""

    name: str
    id: str  # digest ("sha256:...") or, for the host image, "host"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[tuple[str, str]] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""


@dataclass
class PortMapping:
    container_port: int
    host_port: int = 0  # 0: no host port
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass
class DNSConfig:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


@dataclass
class Resources:
    """Limits in the units the kernel wants; the agent converts from the pod spec.

    ``cpu_quota_us``/``cpu_period_us`` come from limits.cpu (none = unlimited), ``cpu_shares``
    from requests.cpu (kubelet's 1024 per core, min 2), memory and pids in absolute numbers.
    """

    cpu_quota_us: int | None = None
    cpu_period_us: int = 100_000
    cpu_shares: int = 2
    memory_limit_bytes: int | None = None
    memory_request_bytes: int | None = None
    pids_limit: int | None = None


@dataclass
class DeviceMapping:
    """A host device node seen in the container (Docker's ``--device HOST:CONTAINER:PERMS``)."""

    host_path: str
    container_path: str
    permissions: str = "rwm"


class SeccompMode(enum.StrEnum):
    UNCONFINED = "Unconfined"
    RUNTIME_DEFAULT = "RuntimeDefault"
    LOCALHOST = "Localhost"


@dataclass
class SecurityConfig:
    """A container's securityContext, merged with the pod's (the container's own wins).

    ``seccomp_profile`` is the Localhost profile's file (already resolved on the node);
    ``pid_target``: the id of a container whose PID namespace this one joins (an ephemeral
    container's ``targetContainerName``); ``host_pid``: the node's PID namespace."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: list[int] = field(default_factory=list)
    privileged: bool = False
    read_only_root_filesystem: bool = False
    allow_privilege_escalation: bool = True
    capabilities_add: list[str] = field(default_factory=list)
    capabilities_drop: list[str] = field(default_factory=list)
    seccomp: SeccompMode = SeccompMode.UNCONFINED
    seccomp_profile: Path | None = None
    unmasked_proc: bool = False  # procMount: Unmasked
    sysctls: dict[str, str] = field(default_factory=dict)
    devices: list[DeviceMapping] = field(default_factory=list)
    host_pid: bool = False
    pid_target: str = ""


@dataclass
class Mount:
    """A host path (file or directory, already prepared by the agent) seen in the container.

    subPath is resolved by the agent, so ``host_path`` is what is mounted.
    """

    host_path: Path
    container_path: str
    read_only: bool = False


@dataclass
class SandboxConfig:
    pod_uid: str
    pod_name: str
    namespace: str
    hostname: str
    # The agent's directory for this pod (volumes, logs, etc-hosts live under it).
    pod_dir: Path
    host_network: bool = False
    host_ipc: bool = False  # the node's IPC namespace (hostIPC)
    # shareProcessNamespace: the pod's containers share one PID namespace (each sees the
    # others' processes), held by a pause process of the sandbox as in Kubernetes.
    share_pid: bool = False
    ports: list[PortMapping] = field(default_factory=list)
    dns: DNSConfig = field(default_factory=DNSConfig)
    # HOST.SUBDOMAIN.NS.svc.DOMAIN of a pod with a subdomain: first name of its /etc/hosts
    # line, so that `hostname -f` gives it (as the kubelet writes it); "" without one.
    fqdn: str = ""
    # (ip, [hostnames]) lines appended to the pod's /etc/hosts (hostAliases).
    host_aliases: list[tuple[str, list[str]]] = field(default_factory=list)
    # Sum of the containers' limits, for the pod-level cgroup.
    resources: Resources = field(default_factory=Resources)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class SandboxStatus:
    id: str
    pod_uid: str
    ready: bool  # False once stopped: the network is gone
    ip: str = ""
    ips: list[str] = field(default_factory=list)
    netns_path: str | None = None  # None: host network
    cgroup_parent: str = ""
    hostname: str = ""
    hosts_path: Path | None = None  # file to mount at /etc/hosts, if any
    resolv_path: Path | None = None  # file to mount at /etc/resolv.conf, if any
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerConfig:
    """One container attempt. ``command``/``args`` follow the pod spec: empty means
    "use the image's", and the driver merges them with :class:`ImageInfo`."""

    name: str
    pod_uid: str
    attempt: int
    image: str
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    env: list[tuple[str, str]] = field(default_factory=list)
    working_dir: str = ""
    mounts: list[Mount] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    log_path: Path = Path("/dev/null")
    # Size-based rotation of ``log_path`` (kubelet's containerLogMaxSize/MaxFiles): at
    # ``log_max_bytes`` it becomes ``<log_path>.1`` (older ones shift up), keeping
    # ``log_max_files`` files in all; 0 bytes = never rotate.
    log_max_bytes: int = 10 * 1024 * 1024
    log_max_files: int = 5
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerStatus:
    id: str
    pod_uid: str
    name: str
    attempt: int
    state: ContainerState
    image: str = ""
    image_id: str = ""
    created_at: float = 0.0  # unix seconds; 0 = not yet
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int | None = None
    # Set for exited containers: "Completed" (0), "Error" (non-zero), "OOMKilled",
    # "StartError" (never ran); plus a human message when there is one.
    reason: str = ""
    message: str = ""
    log_path: Path | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerStats:
    container_id: str
    timestamp: float
    cpu_usage_ns: int
    memory_working_set_bytes: int


class ExecProcess(Protocol):
    """A command running in a container (``kubectl exec``, exec probes, exec hooks).

    ``stdin`` is None unless asked for; with a tty, stderr is merged into stdout (None).
    """

    stdin: asyncio.StreamWriter | None
    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader | None

    async def wait(self) -> int:
        """Exit code once it ended (128+N when killed by signal N)."""
        ...

    def resize(self, cols: int, rows: int) -> None:
        """Terminal size change; ignored without a tty."""
        ...

    def kill(self) -> None:
        """Used when a probe times out or the client goes away."""
        ...


class Attachment(Protocol):
    """A client attached to a running interactive container's own stdio (``kubectl attach``,
    ``kubectl run -it``): its output from now on, and its input if it has one."""

    async def read(self) -> tuple[int, bytes] | None:
        """(1 for stdout or 2 for stderr, bytes), or None once the container's output ended."""
        ...

    async def write(self, data: bytes) -> None:
        """To the container's stdin (ignored when it has none)."""
        ...

    async def close_stdin(self) -> None:
        ...

    async def resize(self, cols: int, rows: int) -> None:
        """Terminal size change; ignored without a tty."""
        ...

    def close(self) -> None:
        """Detach; the container goes on (its stdin closes if it asked for ``stdinOnce``)."""
        ...


@runtime_checkable
class ContainerAttacher(Protocol):
    """Optional ability of a driver that keeps interactive containers' stdio (``stdin`` or
    ``tty`` in the spec): without it, attach can only follow the container's log."""

    async def attach(self, container_id: str) -> Attachment | None:
        """None when the container is not interactive or no longer running."""
        ...


@runtime_checkable
class ExecCapture(Protocol):
    """Optional ability of a driver that runs a command to its end without streams (exec
    probes and hooks): one process start instead of three pipes and a pump per probe. A
    driver without it is driven through :meth:`RuntimeDriver.exec`."""

    async def exec_capture(self, container_id: str, command: list[str],
                           timeout: float) -> tuple[int, bytes]:  # noqa: ASYNC109
        """(exit code, output) of ``command``; raise TimeoutError after ``timeout`` seconds
        (with everything it started killed), :class:`DriverError` when it cannot run."""
        ...


@runtime_checkable
class RuntimeDriver(Protocol):
    name: str

    async def start(self) -> None:
        """Prepare the node (directories, network config). Leaves existing containers alone."""
        ...

    async def close(self) -> None:
        """Release the driver's own resources; containers keep running (agent restarts)."""
        ...

    async def ensure_image(self, image: str, policy: PullPolicy) -> ImageInfo:
        """Make ``image`` available under ``policy`` or raise :class:`ImageError`."""
        ...

    async def run_sandbox(self, config: SandboxConfig) -> SandboxStatus:
        """Create (or return the existing, when one for this pod uid is ready) sandbox."""
        ...

    async def stop_sandbox(self, sandbox_id: str) -> None:
        """Tear the network down; idempotent. Containers must already be stopped."""
        ...

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Forget it entirely (cgroup, files); idempotent."""
        ...

    async def list_sandboxes(self) -> list[SandboxStatus]:
        ...

    async def create_container(self, sandbox: SandboxStatus, config: ContainerConfig,
                               image: ImageInfo) -> str:
        """Returns the container id; raise :class:`StartError` for a config that cannot run."""
        ...

    async def start_container(self, container_id: str) -> None:
        """Raise :class:`StartError` (e.g. executable not found) with a user-readable message."""
        ...

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        """SIGTERM, then SIGKILL after ``grace_seconds``; returns once it has exited.
        Idempotent: stopping an exited container does nothing."""
        ...

    async def remove_container(self, container_id: str) -> None:
        """Delete it (its log file stays: the agent owns logs); idempotent."""
        ...

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        """None when no such container exists (any more)."""
        ...

    async def list_containers(self, pod_uid: str | None = None) -> list[ContainerStatus]:
        """All containers this driver created (optionally of one pod), running or not.
        Cheap enough to call every second: without :class:`ContainerEvents` the agent
        relists to notice exits."""
        ...

    async def exec(self, container_id: str, command: list[str], *, tty: bool = False,
                   stdin: bool = False) -> ExecProcess:
        """Raise :class:`DriverError` when the container is not running."""
        ...

    async def stats(self, container_id: str) -> ContainerStats | None:
        """None when unavailable (not running, or the driver cannot measure)."""
        ...


@runtime_checkable
class ContainerEvents(Protocol):
    """Optional ability of a driver that learns by itself when a container changes state
    (its process exited, its supervisor died) instead of having to be relisted: the agent
    then relists only now and then as a safety net, and wakes a pod's worker as soon as the
    driver names the pod. A driver without it is relisted every ``relist_interval``."""

    async def changed(self) -> set[str]:
        """Wait until containers of some pods changed state on their own; those pods' uids
        (empty: relist everything). Changes the agent made itself need not be told."""
        ...


@dataclass(frozen=True)
class PodNetwork:
    """What a driver that attaches pods to the node's network must know, settled by the
    agent after registration: the node's podCIDR (from the node IPAM controller) and the
    pods' MTU (lowered under an overlay: ``None`` = the link's own)."""

    pod_cidr: str
    mtu: int | None = None


@runtime_checkable
class PodNetworkAware(Protocol):
    """Optional ability of a driver that gives pods addresses of their own (oci); a driver
    whose pods share the host's network (process) lacks it and is told nothing."""

    def set_pod_network(self, network: PodNetwork) -> None:
        """Used for every sandbox made from now on; called before the first pod starts."""
        ...


@runtime_checkable
class SecurityEnforcing(Protocol):
    """Optional ability of a driver that applies a container's :class:`SecurityConfig` (oci:
    namespaces, capabilities, seccomp, devices...). A driver without it (process: containers
    are host processes) runs them as they are, and the agent says so on the pod."""

    def enforces_security(self) -> bool:
        """True: every field of SecurityConfig is applied or refused with an error."""
        ...
