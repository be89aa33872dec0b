"""Send changes to the kernel: one ``nft -f -`` transaction, then the conntrack flushes.

``nft -f`` commits a whole file atomically (all of it or nothing), so the node never runs a
half-written table; a failure raises and the caller falls back to a full resync. Conntrack
entries are deleted with Debian's ``conntrack`` tool: entries of a UDP endpoint that went away
would otherwise keep sending a client's datagrams to it (DNS clients reuse their socket).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bosun.agent.runtime import spawn
from bosun.network.proxy.base import remove_commands
from bosun.network.proxy.diff import Changes

log = logging.getLogger(__name__)


class ApplyError(Exception):
    pass


@dataclass(frozen=True)
class Kernel:
    """Where the rules go: this process's network namespace, or (``prefix``, e.g. ``nsenter
    --net=PATH``) another one, which is how tests program a namespace of their own."""

    prefix: tuple[str, ...] = ()

    async def nft(self, script: str, *, timeout: float = 120.0) -> None:  # noqa: ASYNC109
        code, _, err = await spawn.run([*self.prefix, "nft", "-f", "-"], input=script.encode(), timeout=timeout)
        if code != 0:
            msg = err.decode(errors="replace").strip()
            raise ApplyError(f"nft -f failed ({code}): {msg[:2000]}")

    async def flush_udp(self, endpoints: list[tuple[str, int]]) -> None:
        """Delete the UDP conntrack entries whose replies come from these endpoints (the flows
        a Service translated to them). ``conntrack`` exits 1 when nothing matched: no error."""
        for ip, port in endpoints:
            code, _, err = await spawn.run([*self.prefix, "conntrack", "-D", "-p", "udp", "--reply-src", ip,
                                            "--reply-port-src", str(port)])
            if code not in (0, 1):
                log.warning("conntrack flush of %s:%d failed: %s", ip, port,
                            err.decode(errors="replace").strip())

    async def apply(self, changes: Changes) -> None:
        """The commands as one transaction, then the conntrack flushes (after the commit, so
        no new flow can be translated to a removed endpoint in between)."""
        if changes.commands:
            await self.nft(changes.script())
        if changes.stale_udp:
            await self.flush_udp(changes.stale_udp)

    async def remove_table(self) -> None:
        await self.nft("\n".join(remove_commands()) + "\n")
