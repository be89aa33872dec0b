"""The task's one container: image, command, entrypoint, environment, working_dir, user,
labels, hostname, tty, security settings (privileges, capabilities, sysctls, devices, the
node's PID and IPC namespaces) and stop behaviour."""

from __future__ import annotations

import re

from bosun.agent.images import reference
from bosun.api.validation import devices
from bosun.compose import normalize, units
from bosun.compose.errors import ComposeError
from bosun.compose.translate.context import IMAGE_ANNOTATION, JSON, Service, split_labels

_NUMERIC_USER = re.compile(r"^(\d+)(?::(\d+))?$")


def numeric_user(user: str, sc: JSON) -> bool:
    """``uid[:gid]`` into a securityContext; False for a user name, which cannot be honoured
    without the image's /etc/passwd."""
    m = _NUMERIC_USER.match(user)
    if m is None:
        return False
    sc["runAsUser"] = int(m.group(1))
    if m.group(2):
        sc["runAsGroup"] = int(m.group(2))
    else:
        sc.pop("runAsGroup", None)
    return True


def _user(svc: Service, sc: JSON) -> None:
    user = svc.spec.get("user")
    if user is not None and not numeric_user(str(user), sc):
        svc.warn("user", f"{user!r} is a name: only numeric uid[:gid] can be honoured without the image's "
                         "/etc/passwd; the image's default user runs")


def _labels(svc: Service) -> None:
    """Container labels: as pod labels when Kubernetes accepts them, else as annotations."""
    labels, annotations = split_labels(normalize.list_or_dict(svc.spec.get("labels")))
    svc.pod_labels.update(labels)
    svc.pod_annotations.update(annotations)


def _security(svc: Service, sc: JSON) -> None:
    spec = svc.spec
    if spec.get("privileged"):
        sc["privileged"] = True
    caps: JSON = {}
    if spec.get("cap_add"):
        caps["add"] = [str(c).removeprefix("CAP_") for c in spec["cap_add"]]
    if spec.get("cap_drop"):
        caps["drop"] = [str(c).removeprefix("CAP_") for c in spec["cap_drop"]]
    if caps:
        sc["capabilities"] = caps
    if spec.get("read_only"):
        sc["readOnlyRootFilesystem"] = True
    for opt in spec.get("security_opt") or []:
        _security_opt(svc, sc, str(opt))
    sysctls = normalize.list_or_dict(spec.get("sysctls"))
    if sysctls:
        svc.pod.setdefault("securityContext", {})["sysctls"] = [
            {"name": k, "value": v or ""} for k, v in sysctls.items()]


def _security_opt(svc: Service, sc: JSON, opt: str) -> None:
    """Docker's ``security_opt`` entries that have a securityContext field (``KEY=VALUE`` or
    ``KEY:VALUE``): no-new-privileges and seccomp; the others (apparmor, label...) are warned."""
    key, _, value = opt.replace(":", "=", 1).partition("=")
    if key == "no-new-privileges" and value in ("", "true"):
        if not sc.get("privileged"):  # a privileged container may escalate anyway (Kubernetes refuses both)
            sc["allowPrivilegeEscalation"] = False
    elif key == "no-new-privileges" and value == "false":
        return
    elif key == "seccomp" and value == "unconfined":
        sc["seccompProfile"] = {"type": "Unconfined"}
    else:
        svc.warn("security_opt", f"{opt!r} is not supported; ignored")


def _devices(svc: Service) -> None:
    """``devices:`` (short ``HOST[:CONTAINER][:PERMS]`` or long syntax) as Bosun's devices
    annotation for the container; the node checks that each exists when it starts it."""
    parts = []
    for d in svc.spec.get("devices") or []:
        if isinstance(d, dict):
            text = f"{d.get('source')}:{d.get('target') or d.get('source')}:{d.get('permissions') or 'rwm'}"
        else:
            text = str(d)
        try:
            devices.parse_device(text)
        except ValueError as e:
            raise ComposeError(f"{svc.where}.devices: {e}") from None
        parts.append(text)
    if parts:
        svc.pod_annotations[devices.DEVICES_ANNOTATION + svc.dns] = ",".join(parts)


def _host_namespaces(svc: Service) -> None:
    """``pid: host`` and ``ipc: host``: the node's namespaces (hostPID, hostIPC)."""
    for key, pod_field, fine in (("pid", "hostPID", ()), ("ipc", "hostIPC", ("private", "shareable"))):
        value = svc.spec.get(key)
        if value == "host":
            svc.pod[pod_field] = True
        elif value and value not in fine:
            svc.warn(key, f"{value!r} is not supported: only \"host\" (the node's namespace); the pod's own is used")


class Container:
    fields = frozenset({"image", "command", "entrypoint", "environment", "working_dir", "user", "labels",
                        "hostname", "tty", "stdin_open", "privileged", "cap_add", "cap_drop", "read_only",
                        "sysctls", "stop_grace_period", "container_name", "pull_policy", "devices", "pid", "ipc",
                        "security_opt"})

    def apply(self, svc: Service) -> list[JSON]:
        spec, c = svc.spec, svc.container
        c["name"] = svc.dns
        image = spec.get("image")
        if not image:
            svc.warn("build", "image builds are not supported yet: give the service an image")
            image = f"{svc.stack.name}-{svc.dns}"  # what Compose names a built image
        try:
            reference.parse(str(image))
        except reference.InvalidReference as e:
            raise ComposeError(f"{svc.where}.image: invalid reference format: {e}") from None
        c["image"] = str(image)
        svc.pod_annotations[IMAGE_ANNOTATION] = str(image)
        entrypoint = normalize.command(spec.get("entrypoint"))
        command = normalize.command(spec.get("command"))
        if entrypoint is not None:
            c["command"] = entrypoint
        if command is not None:
            c["args"] = command
        env = spec.get("environment") or {}
        if env:
            c["env"] = [{"name": k, "value": v} for k, v in env.items()]
        if spec.get("working_dir"):
            c["workingDir"] = str(spec["working_dir"])
        if spec.get("tty"):
            c["tty"] = True
        if spec.get("stdin_open"):
            c["stdin"] = True
        if spec.get("hostname"):
            svc.pod["hostname"] = str(spec["hostname"])
        policy = spec.get("pull_policy")
        if policy in ("always", "never", "missing", "if_not_present"):
            c["imagePullPolicy"] = {"always": "Always", "never": "Never"}.get(policy, "IfNotPresent")
        elif policy:
            svc.warn("pull_policy", f"{policy!r} is not supported; the node pulls when the image is missing")
        if spec.get("container_name"):
            svc.warn("container_name", "ignored: a service's tasks are named by the orchestrator "
                                       "(Swarm ignores it too)")
        if "stop_grace_period" in spec:
            svc.pod["terminationGracePeriodSeconds"] = units.whole_seconds(
                spec["stop_grace_period"], f"{svc.where}.stop_grace_period")
        sc: JSON = {}
        _user(svc, sc)
        _security(svc, sc)
        _devices(svc)
        _host_namespaces(svc)
        if sc:
            c["securityContext"] = sc
        _labels(svc)
        return []
