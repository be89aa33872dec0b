"""The node's security rules alone: sysctl admission, runAsNonRoot, device requests and the
default seccomp profile resolved for one container."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bosun.agent import podsecurity as ps
from bosun.agent.runtime import seccomp
from bosun.agent.runtime.base import DeviceMapping, SeccompMode


def _pod(sysctls: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    sc = {"sysctls": [{"name": k, "value": v} for k, v in (sysctls or {}).items()]}
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"securityContext": sc, "containers": [{"name": "c", "image": "x"}], **spec}}


def test_sysctl_admission_like_kubelet() -> None:
    assert ps.sysctl_rejection(_pod({"net.ipv4.ip_local_port_range": "1024 65000"}), []) is None
    assert ps.sysctl_rejection(_pod({"kernel.msgmax": "65536"}), []) == \
        'forbidden sysctl: "kernel.msgmax" not allowlisted'
    assert ps.sysctl_rejection(_pod({"kernel.msgmax": "65536"}), ["kernel.msg*"]) is None
    assert ps.sysctl_rejection(_pod({"net/core/somaxconn": "1024"}), ["net.core.somaxconn"]) is None
    assert ps.sysctl_rejection(_pod({"net.ipv4.tcp_syncookies": "1"}, hostNetwork=True), []) == \
        'forbidden sysctl: "net.ipv4.tcp_syncookies" not allowed with host net enabled'
    assert ps.sysctl_rejection(_pod({"kernel.shm_rmid_forced": "1"}, hostIPC=True), []) == \
        'forbidden sysctl: "kernel.shm_rmid_forced" not allowed with host ipc enabled'
    ps.check_unsafe_allowlist(["kernel.msg*", "net.core.somaxconn", "fs.mqueue.*"])
    with pytest.raises(ValueError, match="not known to be namespaced"):
        ps.check_unsafe_allowlist(["vm.swappiness"])


def test_run_as_non_root_like_kubelet() -> None:
    pod = _pod()
    c: dict[str, Any] = {"name": "c", "securityContext": {"runAsNonRoot": True}}
    where = '(pod: "p_ns(u1)", container: c)'
    assert ps.non_root_error(c, pod, "") == f"container has runAsNonRoot and image will run as root {where}"
    assert ps.non_root_error(c, pod, "0:0") == f"container has runAsNonRoot and image will run as root {where}"
    assert ps.non_root_error(c, pod, "1000") is None
    assert ps.non_root_error(c, pod, "app") == ("container has runAsNonRoot and image has non-numeric user (app), "
                                                f"cannot verify user is non-root {where}")
    c["securityContext"]["runAsUser"] = 0
    assert ps.non_root_error(c, pod, "1000") == f"container's runAsUser breaks non-root policy {where}"
    pod["spec"]["securityContext"].update(runAsNonRoot=True, runAsUser=1000)
    assert ps.non_root_error({"name": "c"}, pod, "") is None
    assert ps.non_root_error({"name": "c"}, _pod(), "") is None


def test_security_config_merges_pod_and_container(tmp_path: Path) -> None:
    pod = _pod({"kernel.shm_rmid_forced": "1"}, hostPID=True)
    pod["spec"]["securityContext"].update(runAsUser=5, seccompProfile={"type": "RuntimeDefault"})
    pod["metadata"]["annotations"] = {ps.DEVICES_ANNOTATION + "c": "/dev/fuse, /dev/sda:/dev/xvda:r"}
    c: dict[str, Any] = {"name": "c", "securityContext": {"runAsUser": 7, "procMount": "Unmasked",
                                          "seccompProfile": {"type": "Localhost", "localhostProfile": "a.json"}}}
    sec = ps.security_config(c, pod, tmp_path)
    assert sec.run_as_user == 7 and sec.unmasked_proc and sec.host_pid
    assert sec.seccomp == SeccompMode.LOCALHOST and sec.seccomp_profile == tmp_path / "a.json"
    assert sec.sysctls == {"kernel.shm_rmid_forced": "1"}
    assert sec.devices == [DeviceMapping("/dev/fuse", "/dev/fuse", "rwm"), DeviceMapping("/dev/sda", "/dev/xvda", "r")]
    assert ps.security_config({"name": "other"}, pod, tmp_path).seccomp == SeccompMode.RUNTIME_DEFAULT
    c["securityContext"]["seccompProfile"]["localhostProfile"] = "../escape.json"
    with pytest.raises(ValueError, match="must name a file under"):
        ps.security_config(c, pod, tmp_path)


@pytest.mark.parametrize("text", ["dev/fuse", "/dev/a:rx", "/dev/a:b:r", "/a:/b:r:x", "/dev/a:/dev/b:"])
def test_bad_device_requests_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="device"):
        ps.parse_devices(text)


def test_default_profile_resolved_for_the_containers_capabilities() -> None:
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
               "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
               "syscalls": [
                   {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                   {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                   {"names": ["setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                    "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                   {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
                   {"names": ["new_one"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "9.1"}}]}
    plain = seccomp.oci_profile(profile, ["CAP_CHOWN"], arch="amd64", kernel=(6, 1))
    assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"] and plain["defaultErrnoRet"] == 38
    assert [s["names"][0] for s in plain["syscalls"]] == ["read", "setns", "arch_prctl"]
    admin = seccomp.oci_profile(profile, ["CAP_SYS_ADMIN"], arch="arm64", kernel=(9, 2))
    assert [s["names"][0] for s in admin["syscalls"]] == ["read", "mount", "new_one"]
    # The node's own default profile (Debian's golang-github-containers-common) loads and resolves.
    assert seccomp.oci_profile(seccomp.runtime_default(), ["CAP_CHOWN"])["syscalls"]
