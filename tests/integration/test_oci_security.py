"""securityContext on real crun/runc containers, checked from inside the container:
capabilities (CapEff), no_new_privs, seccomp, /proc masking, sysctls, device nodes, and
the PID and IPC namespaces (own, the node's, or another container's)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from tests.integration.oci_env import OciEnv, oci_env, requires_oci, wait_for

from bosun.agent.runtime.base import (
    ContainerState,
    DeviceMapping,
    PullPolicy,
    SandboxStatus,
    SeccompMode,
    SecurityConfig,
    StartError,
)

pytestmark = [requires_oci, pytest.mark.timeout(60)]

# linux/capability.h numbers of the capabilities the tests look at.
CAP_CHOWN, CAP_NET_ADMIN, CAP_SYS_ADMIN = 0, 12, 21


@pytest.fixture
async def env() -> AsyncIterator[OciEnv]:
    async with oci_env() as e:
        yield e


async def _output(env: OciEnv, sb: SandboxStatus, name: str, script: str, security: SecurityConfig) -> str:
    """What ``sh -c script`` printed in a container of ``sb`` (the CRI prefixes stripped)."""
    d = env.driver
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    cid = await d.create_container(sb, env.container(sb.pod_uid, name, ["sh", "-c", script], security=security), info)
    await d.start_container(cid)
    st = await wait_for(lambda: _exited(env, cid), within=20)
    text = st.log_path.read_text() if st.log_path and st.log_path.exists() else ""
    return "\n".join(line.split(" ", 3)[3] for line in text.splitlines() if line.count(" ") >= 3)


async def _exited(env: OciEnv, cid: str) -> object:
    st = await env.driver.container_status(cid)
    return st if st is not None and st.state == ContainerState.EXITED else None


def _field(out: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith(name + ":"))


def _caps(out: str) -> set[int]:
    mask = int(_field(out, "CapEff"), 16)
    return {bit for bit in range(64) if mask >> bit & 1}


STATUS = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"


async def test_capabilities_privileged_and_no_new_privs(env: OciEnv) -> None:
    sb = await env.driver.run_sandbox(env.sandbox("caps"))
    default = await _output(env, sb, "default", STATUS, SecurityConfig())
    assert CAP_CHOWN in _caps(default) and CAP_NET_ADMIN not in _caps(default)
    assert _field(default, "NoNewPrivs") == "0"
    changed = await _output(env, sb, "changed", STATUS, SecurityConfig(
        capabilities_add=["NET_ADMIN"], capabilities_drop=["CHOWN"], allow_privilege_escalation=False))
    assert CAP_NET_ADMIN in _caps(changed) and CAP_CHOWN not in _caps(changed)
    assert CAP_SYS_ADMIN not in _caps(changed)
    assert _field(changed, "NoNewPrivs") == "1"
    bounding = int(_field(_read("/proc/self/status"), "CapBnd"), 16)  # what the node itself may give
    script = f"{STATUS}; test -c /dev/kmsg && echo has-kmsg; " \
             "touch /sys/kernel/x 2>&1 | grep -q Read-only || echo sys-rw"
    privileged = await _output(env, sb, "privileged", script, SecurityConfig(privileged=True))
    assert int(_field(privileged, "CapEff"), 16) == bounding
    assert "has-kmsg" in privileged and "sys-rw" in privileged, privileged
    plain = await _output(env, sb, "plain", "test -e /dev/kmsg || echo no-kmsg", SecurityConfig())
    assert plain == "no-kmsg"


# add_key(2) is not in the default profile's allow list (its default action: ENOSYS).
ADD_KEY = {"x86_64": 248, "aarch64": 217}[os.uname().machine]
TRY_ADD_KEY = (f"python3 -c \"import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
               f"r = libc.syscall({ADD_KEY}, b'user', b'k', b'v', 1, -3); "
               "print('errno', ctypes.get_errno() if r < 0 else 0)\"")


async def test_seccomp_runtime_default_and_unconfined(env: OciEnv) -> None:
    sb = await env.driver.run_sandbox(env.sandbox("seccomp"))
    script = f"{STATUS}; {TRY_ADD_KEY}"
    confined = await _output(env, sb, "confined", script, SecurityConfig(seccomp=SeccompMode.RUNTIME_DEFAULT))
    assert _field(confined, "Seccomp") == "2" and "errno 38" in confined, confined
    free = await _output(env, sb, "free", script, SecurityConfig(seccomp=SeccompMode.UNCONFINED))
    assert _field(free, "Seccomp") == "0" and "errno 38" not in free, free
    # A privileged container runs unfiltered whatever it asks for (containerd's rule).
    privileged = await _output(env, sb, "privileged", STATUS,
                               SecurityConfig(seccomp=SeccompMode.RUNTIME_DEFAULT, privileged=True))
    assert _field(privileged, "Seccomp") == "0"


async def test_proc_mount_and_sysctls(env: OciEnv) -> None:
    sb = await env.driver.run_sandbox(env.sandbox("proc"))
    host = [_read(f"/proc/sys/{p}") for p in ("net/ipv4/ip_unprivileged_port_start", "kernel/shm_rmid_forced")]
    script = "grep -c -E ' /proc/(kcore|sys|keys) ' /proc/self/mountinfo; " \
             "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced"
    sysctls = {"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shm_rmid_forced": "1"}
    masked = await _output(env, sb, "masked", script, SecurityConfig(sysctls=sysctls))
    assert masked.splitlines()[1:] == ["80", "1"] and int(masked.splitlines()[0]) >= 2, masked
    unmasked = await _output(env, sb, "unmasked", script, SecurityConfig(unmasked_proc=True))
    assert unmasked.splitlines()[0] == "0", unmasked
    # Set in the pod's own namespaces: the node's values are untouched.
    assert [_read(f"/proc/sys/{p}") for p in ("net/ipv4/ip_unprivileged_port_start",
                                              "kernel/shm_rmid_forced")] == host


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


async def test_host_device_mapping_and_missing_device(env: OciEnv) -> None:
    sb = await env.driver.run_sandbox(env.sandbox("dev"))
    # /dev/fuse: not among the devices every container may open (null, zero, tty...).
    script = "test -c /dev/xfuse && echo present; : < /dev/xfuse && echo readable; " \
             "(: > /dev/xfuse) 2>&1 | grep -q 'not permitted' && echo write-denied"
    out = await _output(env, sb, "mapped", script,
                        SecurityConfig(devices=[DeviceMapping("/dev/fuse", "/dev/xfuse", "r")]))
    assert out.splitlines() == ["present", "readable", "write-denied"], out
    absent = await _output(env, sb, "unmapped", "test -e /dev/xfuse || echo absent", SecurityConfig())
    assert absent == "absent"
    info = await env.driver.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    with pytest.raises(StartError, match="device /dev/no-such-device not found on the node"):
        await env.driver.create_container(sb, env.container(
            sb.pod_uid, "missing", ["true"],
            security=SecurityConfig(devices=[DeviceMapping("/dev/no-such-device", "/dev/x")])), info)


async def test_host_pid_host_ipc_and_a_target_pid_namespace(env: OciEnv) -> None:
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("ns"))
    own = await _output(env, sb, "own", "cat /proc/1/comm; readlink /proc/self/ns/ipc", SecurityConfig())
    assert own.splitlines()[0] == "sh"
    assert own.splitlines()[1] != os.readlink("/proc/self/ns/ipc")
    host_sb = await d.run_sandbox(env.sandbox("hostns", host_ipc=True))
    host = await _output(env, host_sb, "host", "cat /proc/1/comm; readlink /proc/self/ns/ipc",
                         SecurityConfig(host_pid=True))
    assert host.splitlines() == [_read("/proc/1/comm"), os.readlink("/proc/self/ns/ipc")], host
    # A container joins a running one's PID namespace (an ephemeral container's target).
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    target = await d.create_container(sb, env.container(sb.pod_uid, "target", ["sleep", "300"]), info)
    await d.start_container(target)
    joined = await _output(env, sb, "debug", "cat /proc/1/comm; ls /proc | grep -c '^[0-9]'",
                           SecurityConfig(pid_target=target))
    assert joined.splitlines()[0] == "sleep", joined
    await d.stop_container(target, 0)
    with pytest.raises(StartError, match="is not running"):
        await d.create_container(sb, env.container(sb.pod_uid, "late", ["true"],
                                                   security=SecurityConfig(pid_target=target)), info)
