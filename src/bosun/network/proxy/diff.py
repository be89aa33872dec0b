"""What to send: the difference between the rules last committed and the rules wanted.

The proxy keeps what it committed in memory (a :class:`.state.Ruleset`) and never lists the
kernel's table to find out (listing 50,000 chains on every sync is what made kube-proxy's
iptables and early nftables modes slow at scale). :func:`diff` orders the commands so that one
``nft -f`` transaction is valid at every step: a chain or set is emptied before anything that
referred to it goes, and created before anything refers to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bosun.network.proxy.base import NodeNetwork, T, base_commands, recreate_commands
from bosun.network.proxy.state import Ruleset


@dataclass
class Changes:
    commands: list[str] = field(default_factory=list)
    # UDP endpoints that left: their conntrack entries are flushed after the commit, so that a
    # client's next datagram picks a live endpoint instead of the old translation.
    stale_udp: list[tuple[str, int]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.commands or self.stale_udp)

    def script(self) -> str:
        return "\n".join(self.commands) + "\n"


def _element(map_: str, key: str, verdict: str | None = None) -> str:
    return f"{map_} {{ {key}{' : ' + verdict if verdict else ''} }}"


def diff(old: Ruleset, new: Ruleset) -> Changes:
    """Commands turning ``old`` (committed) into ``new`` (wanted)."""
    out = Changes()
    cmds = out.commands
    added_chains = [c for c in new.chains if c not in old.chains]
    changed_chains = [c for c, rules in new.chains.items()
                      if c in old.chains and old.chains[c] is not rules and old.chains[c] != rules]
    removed_chains = [c for c in old.chains if c not in new.chains]
    cmds += [f"add chain {T} {c}" for c in added_chains]
    cmds += [f"flush chain {T} {c}" for c in changed_chains + removed_chains]
    gone = [k for k, v in old.elements.items() if new.elements.get(k) != v]
    cmds += [f"delete element {T} {_element(*k)}" for k in gone]
    cmds += [f"add set {T} {s} {decl}" for s, decl in new.sets.items() if s not in old.sets]
    for c in added_chains + changed_chains:
        cmds += [f"add rule {T} {c} {rule}" for rule in new.chains[c]]
    cmds += [f"add element {T} {_element(k[0], k[1], v)}" for k, v in new.elements.items()
             if old.elements.get(k) != v]
    cmds += [f"delete chain {T} {c}" for c in removed_chains]
    cmds += [f"delete set {T} {s}" for s in old.sets if s not in new.sets]
    out.stale_udp = sorted(old.udp_endpoints - new.udp_endpoints)
    return out


def full(net: NodeNetwork, new: Ruleset) -> Changes:
    """The first sync of a (re)started proxy: the table made anew with everything in it, in one
    transaction (what it held before, this proxy's or an earlier one's, is replaced whole)."""
    out = diff(Ruleset(), new)
    out.commands = recreate_commands() + base_commands(net) + out.commands
    out.stale_udp = []
    return out
