"""Pod networking through the standard CNI plugins (Debian's containernetworking-plugins).

We run the plugins ourselves, as a CNI runtime does (libcni's job: a few lines), instead of
depending on one: the network list is fixed (loopback, then bridge with host-local IPAM on
the node's podCIDR, then portmap for hostPorts), and each ADD result is saved so that DEL
gets its ``prevResult`` and can undo exactly what ADD did (veth, IP lease, iptables rules),
even after an agent restart.

Outbound NAT is not the bridge plugin's ``ipMasq`` (a chain and rules per pod, each an
iptables run under the xtables lock, which serialised 100 pod starts): the node's service
proxy owns it, one rule for the podCIDR in its nftables table (bosun.network.proxy.base).
portmap runs only for pods with hostPorts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bosun.agent.runtime import spawn

CNI_VERSION = "1.0.0"
PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni")


# The plugins are short-lived Go programs (bridge runs host-local too, with this environment):
# one processor for Go code and no garbage collector cut a pod's bridge ADD from ~7.7 to
# ~7.1 ms of CPU (30 ADDs each way, three rounds), with fewer runtime threads competing when
# 100 pods start at once. Nothing a plugin does lives long enough to need collecting.
_GO_ENV = {"GOMAXPROCS": "1", "GOGC": "off"}


class CniError(Exception):
    pass


@dataclass
class HostPort:
    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""


@dataclass
class CniConfig:
    pod_cidr: str = "10.88.0.0/16"
    bridge: str = "bosun0"
    network_name: str = "bosun"
    mtu: int | None = None
    plugin_dirs: tuple[str, ...] = PLUGIN_DIRS
    # host-local's lease files. The standard place by default, so that two agents sharing
    # a host and a network (tests, `bosun up` next to `bosun agent`) never hand out one IP twice.
    ipam_dir: str | None = None
    # False: the runtime brings ``lo`` up itself when it makes the namespace (the oci driver
    # does, see runtime/podns.py), so the loopback plugin is not run: one Go program less
    # per pod ADD and DEL.
    loopback: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class Cni:
    """ADD/DEL a pod's network namespace to the node bridge."""

    def __init__(self, state_dir: Path, config: CniConfig | None = None) -> None:
        self.state_dir = state_dir
        self.config = config or CniConfig()
        ipaddress.ip_network(self.config.pod_cidr)  # fail early on a bad podCIDR
        self.ipam_dir = Path(self.config.ipam_dir) if self.config.ipam_dir else state_dir / "networks"
        self.results_dir = state_dir / "results"

    def _plugins(self) -> list[dict[str, Any]]:
        c = self.config
        bridge: dict[str, Any] = {
            "type": "bridge", "bridge": c.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": c.pod_cidr}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.ipam_dir)},
        }
        if c.mtu:
            bridge["mtu"] = c.mtu
        return [*([{"type": "loopback"}] if c.loopback else []), bridge,
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]

    def _find(self, plugin: str) -> str:
        for d in self.config.plugin_dirs:
            p = os.path.join(d, plugin)
            if os.access(p, os.X_OK):
                return p
        raise CniError(f"CNI plugin {plugin!r} not found in {', '.join(self.config.plugin_dirs)} "
                       "(install containernetworking-plugins)")

    async def _exec(self, conf: dict[str, Any], command: str, container_id: str, netns: str,
                    ifname: str) -> dict[str, Any]:
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
               "CNI_IFNAME": ifname, "CNI_PATH": ":".join(self.config.plugin_dirs),
               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **_GO_ENV}
        code, out, err = await spawn.run([self._find(conf["type"])], input=json.dumps(conf).encode(), env=env)
        if code != 0:
            msg = err.decode(errors="replace").strip()
            with contextlib.suppress(ValueError):
                data = json.loads(out)
                msg = f"{data.get('msg', '')} {data.get('details', '')}".strip() or msg
            raise CniError(f"CNI {conf['type']} {command} failed: {msg}")
        if not out.strip():
            return {}
        result = json.loads(out)
        return result if isinstance(result, dict) else {}

    def _net_conf(self, plugin: dict[str, Any], prev: dict[str, Any] | None,
                  ports: list[HostPort]) -> dict[str, Any]:
        conf = {"cniVersion": CNI_VERSION, "name": self.config.network_name, **plugin}
        if prev is not None:
            conf["prevResult"] = prev
        if plugin.get("capabilities", {}).get("portMappings"):
            conf["runtimeConfig"] = {"portMappings": [
                {"hostPort": p.host_port, "containerPort": p.container_port,
                 "protocol": p.protocol.lower(), **({"hostIP": p.host_ip} if p.host_ip else {})}
                for p in ports]}
        return conf

    async def add(self, container_id: str, netns: str, ports: list[HostPort] | None = None,
                  ifname: str = "eth0") -> dict[str, Any]:
        """Attach the namespace; returns the CNI result (``ips[0].address`` is the pod IP).
        On failure whatever was done is undone before raising."""
        ports = ports or []
        self.results_dir.mkdir(parents=True, exist_ok=True)
        # Saved before ADD so that a crash half-way still lets DEL clean up. ``masq: "node"``
        # says no per-pod NAT chain exists (results of older agents lack it: DEL purges then).
        saved = {"netns": netns, "ifname": ifname, "ports": [vars(p) for p in ports], "masq": "node"}
        (self.results_dir / container_id).write_text(json.dumps({**saved, "result": None}))
        prev: dict[str, Any] | None = None
        try:
            for plugin in self._plugins():
                if plugin["type"] == "portmap" and not ports:
                    continue
                res = await self._exec(self._net_conf(plugin, prev, ports), "ADD", container_id, netns,
                                       "lo" if plugin["type"] == "loopback" else ifname)
                if plugin["type"] != "loopback":
                    prev = res or prev
        except BaseException:
            with contextlib.suppress(Exception):
                await self.delete(container_id)
            raise
        (self.results_dir / container_id).write_text(json.dumps({**saved, "result": prev}))
        return prev or {}

    async def delete(self, container_id: str) -> None:
        """Detach (veth, IP lease, port rules); idempotent, works when the netns is gone."""
        path = self.results_dir / container_id
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        ports = [HostPort(**p) for p in saved.get("ports") or []]
        prev = saved.get("result")
        errors = []
        netns = saved["netns"] if _is_netns(saved["netns"]) else ""
        for plugin in reversed(self._plugins()):
            if plugin["type"] == "loopback" and not netns:
                continue
            if plugin["type"] == "portmap" and not ports:
                continue  # ADD skipped it too: nothing to undo
            try:
                await self._exec(self._net_conf(plugin, prev, ports), "DEL", container_id, netns,
                                 "lo" if plugin["type"] == "loopback" else saved["ifname"])
            except CniError as e:
                errors.append(str(e))
        if errors:
            raise CniError("; ".join(errors))
        # The bridge plugin finds its masquerade rules through the addresses inside the
        # namespace: when that is already gone, they would stay. Remove them by comment.
        if ports or saved.get("masq") != "node":
            await self._purge_rules(container_id)
        path.unlink(missing_ok=True)

    async def _purge_rules(self, container_id: str) -> None:
        _, raw, _ = await spawn.run(["iptables-save", "-t", "nat"])
        out = raw
        tag = f'name: \\"{self.config.network_name}\\" id: \\"{container_id}\\"'
        chains: set[str] = set()
        for line in out.decode(errors="replace").splitlines():
            if not line.startswith("-A ") or tag not in line:
                continue
            args = shlex.split(line)
            if "-j" in args:
                target = args[args.index("-j") + 1]
                if target.startswith("CNI-") and not target.startswith("CNI-HOSTPORT"):
                    chains.add(target)
            await _quiet("iptables", "-t", "nat", "-D", *args[1:])
        for chain in chains:
            await _quiet("iptables", "-t", "nat", "-F", chain)
            await _quiet("iptables", "-t", "nat", "-X", chain)

    def known(self) -> list[str]:
        """Container ids with a saved ADD (for cleanup of sandboxes that vanished)."""
        if not self.results_dir.is_dir():
            return []
        return sorted(p.name for p in self.results_dir.iterdir())


async def _quiet(*cmd: str) -> None:
    await spawn.run(list(cmd))


def _is_netns(path: str) -> bool:
    """Still a namespace (an nsfs mount), not just the file it was mounted on."""
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                pre, _, post = line.partition(" - ")
                if pre.split()[4] == real and post.split()[0] == "nsfs":
                    return True
    except OSError:
        pass
    return path.startswith("/proc/") and os.path.exists(path)


def pod_ip(result: dict[str, Any]) -> str:
    for ip in result.get("ips") or []:
        addr = str(ip.get("address", ""))
        if addr:
            return addr.split("/")[0]
    return ""


def bridge_unused(bridge: str) -> bool:
    """The node bridge exists with no pod attached: a node left with no pod may remove it
    (another agent on this host may share it, so only when nothing is attached)."""
    brif = Path("/sys/class/net") / bridge / "brif"
    try:
        return brif.is_dir() and not any(brif.iterdir())
    except OSError:
        return False
