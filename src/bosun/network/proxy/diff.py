"""What to send: the difference between the rules last committed and the rules wanted.

The proxy keeps what it committed in memory (:class:`Committed`, per Service) and never lists
the kernel's table to find out (listing 50,000 chains on every sync is what made kube-proxy's
iptables and early nftables modes slow at scale). A sync compares only the Services that
changed: the cost of one change does not grow with the number of Services. :func:`diff` orders the commands so that one
``nft -f`` transaction is valid at every step: a chain or set is emptied before anything that
referred to it goes, and created before anything refers to it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from bosun.network.proxy.base import Existing, NodeNetwork, T, base_commands, teardown_commands
from bosun.network.proxy.state import Ruleset, ServiceRules, ruleset


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


def _element(map_: str, key: str, verdict: str = "") -> str:
    """One element of a map (``key : verdict``) or of a set (no verdict)."""
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


def full(net: NodeNetwork, new: Ruleset, existing: Existing) -> Changes:
    """A (re)started proxy's first sync, or the one after a failed transaction: the proxy's part
    of the table made anew, in one transaction. ``existing`` is what the table holds now
    (:meth:`.apply.Kernel.objects`); the proxy's part of it is replaced whole."""
    out = diff(Ruleset(), new)
    out.commands = teardown_commands(existing) + base_commands(net) + out.commands
    out.stale_udp = []
    return out


def _winner(owners: Mapping[str, str]) -> str | None:
    """The verdict a map key holds when several Services claim it: the first Service's (as
    :func:`.state.ruleset` merges)."""
    return owners[min(owners)] if owners else None


class Committed:
    """What the table holds, per Service, as last committed. Chains and affinity sets belong to
    one Service each (their names say which); map and set elements may be claimed by several
    (an endpoint's hairpin pair, an external IP two Services name), so their claimants are
    counted and an element goes only with its last claimant."""

    def __init__(self) -> None:
        self.parts: dict[str, ServiceRules] = {}
        self.owners: dict[tuple[str, str], dict[str, str]] = {}
        self.udp: Counter[tuple[str, int]] = Counter()

    def ruleset(self) -> Ruleset:
        return ruleset(self.parts[k] for k in sorted(self.parts))

    def plan(self, changed: Mapping[str, ServiceRules | None]) -> Changes:
        """The commands that move the table from what is committed to ``changed`` (Service key
        -> its new rules, None when it is gone); reads only the Services named there."""
        old, new = Ruleset(), Ruleset()
        keys: set[tuple[str, str]] = set()
        endpoints: set[tuple[str, int]] = set()
        for svc, part in changed.items():
            for src, dst in ((self.parts.get(svc), old), (part, new)):
                if src is not None:
                    dst.chains.update(src.chains)
                    dst.sets.update(src.sets)
                    keys.update(src.elements)
                    endpoints |= src.udp_endpoints
        for k in keys:
            owners = self.owners.get(k, {})
            after = {s: v for s, v in owners.items() if s not in changed}
            after.update({s: p.elements[k] for s, p in changed.items() if p is not None and k in p.elements})
            before_v, after_v = _winner(owners), _winner(after)
            if before_v is not None:
                old.elements[k] = before_v
            if after_v is not None:
                new.elements[k] = after_v
        for ep in endpoints:
            count = self.udp[ep]
            if count:
                old.udp_endpoints.add(ep)
            for svc, part in changed.items():
                prev = self.parts.get(svc)
                count += part is not None and ep in part.udp_endpoints
                count -= prev is not None and ep in prev.udp_endpoints
            if count:
                new.udp_endpoints.add(ep)
        return diff(old, new)

    def commit(self, changed: Mapping[str, ServiceRules | None]) -> None:
        """Record ``changed`` as committed (after the transaction succeeded)."""
        for svc, part in changed.items():
            prev = self.parts.pop(svc, None)
            if prev is not None:
                for k in prev.elements:
                    owners = self.owners.get(k)
                    if owners is not None:
                        owners.pop(svc, None)
                        if not owners:
                            del self.owners[k]
                for ep in prev.udp_endpoints:
                    self.udp[ep] -= 1
                    if self.udp[ep] <= 0:
                        del self.udp[ep]
            if part is not None:
                self.parts[svc] = part
                for k, v in part.elements.items():
                    self.owners.setdefault(k, {})[svc] = v
                self.udp.update(part.udp_endpoints)
