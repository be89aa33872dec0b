"""What the agent mounts on /sys/fs/cgroup when `ip netns exec` hid it, read from mountinfo."""

from __future__ import annotations

from bosun.agent.cgroup_mounts import cgroups_visible, layout_from_membership, parse_mountinfo, wanted_layout

HYBRID = """\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,nosuid,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
FRESH_SYS = "52 51 0:41 / /sys rw,relatime - sysfs bnh1-n1 rw\n"
UNIFIED = "30 23 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_a_fresh_sysfs_has_no_cgroups_and_the_hosts_hybrid_layout_is_copied_in_order() -> None:
    assert not cgroups_visible(parse_mountinfo(FRESH_SYS))
    layout = wanted_layout(parse_mountinfo(HYBRID))
    assert [(m.mount_point, m.fstype, m.options) for m in layout] == [
        ("/sys/fs/cgroup", "tmpfs", "rw,relatime,mode=755"),
        ("/sys/fs/cgroup/cpu", "cgroup", "rw,relatime,cpu"),
        ("/sys/fs/cgroup/systemd", "cgroup", "rw,nosuid,relatime,xattr,name=systemd"),
        ("/sys/fs/cgroup/unified", "cgroup2", "rw,relatime"),
    ]
    assert parse_mountinfo(HYBRID)[0].propagation == ("shared:7",)


def test_a_unified_host_gives_cgroup2_and_an_unreadable_one_falls_back_to_it() -> None:
    assert cgroups_visible(parse_mountinfo(UNIFIED))
    [m] = wanted_layout(parse_mountinfo(UNIFIED))
    assert (m.mount_point, m.fstype) == ("/sys/fs/cgroup", "cgroup2")
    assert m.options == "rw,nosuid,nodev,noexec,relatime,nsdelegate"
    [fallback] = wanted_layout(None)
    assert (fallback.mount_point, fallback.fstype) == ("/sys/fs/cgroup", "cgroup2")
    assert wanted_layout(parse_mountinfo(FRESH_SYS)) == [fallback]


def test_without_the_hosts_mounts_the_layout_follows_our_own_cgroup_membership() -> None:
    hybrid = "9:name=systemd:/\n4:memory:/x\n2:cpu,cpuacct:/\n0::/\n"
    assert [(m.mount_point, m.fstype, m.options) for m in wanted_layout(None, hybrid)] == [
        ("/sys/fs/cgroup", "tmpfs", "rw,nosuid,nodev,noexec,mode=755"),
        ("/sys/fs/cgroup/systemd", "cgroup", "rw,nosuid,nodev,noexec,relatime,name=systemd"),
        ("/sys/fs/cgroup/memory", "cgroup", "rw,nosuid,nodev,noexec,relatime,memory"),
        ("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,nosuid,nodev,noexec,relatime,cpu,cpuacct"),
        ("/sys/fs/cgroup/unified", "cgroup2", "rw,nosuid,nodev,noexec,relatime"),
    ]
    [v2] = layout_from_membership("0::/user.slice\n")
    assert (v2.mount_point, v2.fstype) == ("/sys/fs/cgroup", "cgroup2")
    assert layout_from_membership("") == []
