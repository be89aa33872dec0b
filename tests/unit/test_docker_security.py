"""How the docker driver says a securityContext to the Docker Engine (docker_security): the
create options for Kubernetes' defaults, dropped and added capabilities, a group alone, a
Localhost seccomp profile, devices (present and missing) and both kinds of privileged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bosun.agent.runtime.base import DeviceMapping, SeccompMode, SecurityConfig
from bosun.agent.runtime.docker_security import docker_security, pid_mode, user_of

DOCKER_DEFAULT = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
                  "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"]


def test_kubernetes_defaults_are_unconfined_with_the_default_capabilities() -> None:
    out = docker_security(SecurityConfig(), "", full_privilege=True)
    assert out.host == {"cap_drop": ["ALL"], "cap_add": DOCKER_DEFAULT, "security_opt": ["seccomp=unconfined"],
                        "devices": None}
    assert out.raw_host == {} and out.user is None


def test_a_tight_container() -> None:
    sec = SecurityConfig(capabilities_drop=["ALL"], capabilities_add=["CAP_NET_BIND_SERVICE"],
                         allow_privilege_escalation=False, seccomp=SeccompMode.RUNTIME_DEFAULT,
                         read_only_root_filesystem=True, run_as_group=3000, supplemental_groups=[4000, 5000],
                         sysctls={"kernel.msgmax": "12345"}, unmasked_proc=True)
    out = docker_security(sec, "app:app", full_privilege=True)
    assert out.host["cap_add"] == ["NET_BIND_SERVICE"] and out.host["cap_drop"] == ["ALL"]
    assert out.host["security_opt"] == ["no-new-privileges"]  # RuntimeDefault: the engine's own profile
    assert out.host["read_only"] is True and out.host["group_add"] == ["4000", "5000"]
    assert out.host["sysctls"] == {"kernel.msgmax": "12345"}
    assert out.raw_host == {"MaskedPaths": [], "ReadonlyPaths": []}
    assert out.user == "app:3000"  # a group alone goes with the image's user


def test_users() -> None:
    assert user_of(SecurityConfig(run_as_user=1000), "app") == "1000"
    assert user_of(SecurityConfig(run_as_user=1000, run_as_group=0), "") == "1000:0"
    assert user_of(SecurityConfig(run_as_group=7), "") == "0:7"
    assert user_of(SecurityConfig(), "nobody") == "nobody"


def test_a_localhost_profile_is_handed_over_as_json(tmp_path: Path) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    (tmp_path / "p.json").write_text(json.dumps(profile))
    out = docker_security(SecurityConfig(seccomp=SeccompMode.LOCALHOST, seccomp_profile=tmp_path / "p.json"), "",
                          full_privilege=True)
    opt = out.host["security_opt"][0]
    assert opt.startswith("seccomp=") and json.loads(opt.removeprefix("seccomp=")) == profile
    with pytest.raises(ValueError, match="cannot read seccomp profile"):
        docker_security(SecurityConfig(seccomp=SeccompMode.LOCALHOST, seccomp_profile=tmp_path / "gone.json"), "",
                        full_privilege=True)


def test_devices_present_and_missing() -> None:
    out = docker_security(SecurityConfig(devices=[DeviceMapping("/dev/null", "/dev/mynull", "r")]), "",
                          full_privilege=True)
    assert out.host["devices"] == ["/dev/null:/dev/mynull:r"]
    with pytest.raises(ValueError, match=r"^device /dev/no-such-device not found on the node$"):
        docker_security(SecurityConfig(devices=[DeviceMapping("/dev/no-such-device", "/dev/x")]), "",
                        full_privilege=True)


def test_privileged_is_the_engines_own_or_spelled_out() -> None:
    sec = SecurityConfig(privileged=True, capabilities_drop=["ALL"], allow_privilege_escalation=False)
    assert docker_security(sec, "", full_privilege=True).host == {"privileged": True, "devices": None}
    out = docker_security(sec, "", full_privilege=False)
    assert out.host["cap_add"] == ["ALL"] and "privileged" not in out.host
    assert out.host["security_opt"] == ["seccomp=unconfined", "apparmor=unconfined"]
    assert out.host["device_cgroup_rules"] == ["a *:* rwm"]
    assert out.raw_host == {"MaskedPaths": [], "ReadonlyPaths": []}
    assert not any(d.split(":")[0] in ("/dev/null", "/dev/console") for d in out.host["devices"] or [])


def test_pid_modes() -> None:
    assert pid_mode(SecurityConfig(host_pid=True), "pause") == "host"
    assert pid_mode(SecurityConfig(pid_target="abc"), "pause") == "container:abc"
    assert pid_mode(SecurityConfig(), "pause") == "container:pause"
    assert pid_mode(SecurityConfig(), "") is None
