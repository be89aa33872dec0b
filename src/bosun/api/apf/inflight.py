"""kube-apiserver's max-in-flight filter, what limits requests when API Priority and Fairness
is off (``--enable-priority-and-fairness=false``): at most ``--max-requests-inflight``
read-only requests (get, list) and ``--max-mutating-requests-inflight`` others at once in
this API process (its part of them, as with APF); one more is refused at once with 429 and
``Retry-After: 1``, except for ``system:masters``, served anyway. Watches and the other
long-running requests (exec, attach, port-forward, proxy, logs) are not counted.
"""

from __future__ import annotations

from bosun.api.apf.dispatcher import too_many
from bosun.api.apf.gate import LONG_RUNNING
from bosun.api.metricfamily import Family
from bosun.api.target import Decoded
from bosun.security.identity import User

READ_ONLY = "readOnly"
MUTATING = "mutating"
_READ_VERBS = frozenset({"get", "list", "watch"})


class InFlight:
    def __init__(self, read_only: int, mutating: int) -> None:
        self.limits = {READ_ONLY: read_only, MUTATING: mutating}
        self.in_use = {READ_ONLY: 0, MUTATING: 0}
        self.dropped = Family("counter", "apiserver_dropped_requests",
                              "Requests refused by the max-in-flight limits, by kind.", ["request_kind"])
        # apiserver_current_inflight_requests is the instrumentation's (bosun.api.instrumentation).
        self.families = [self.dropped]

    def take(self, d: Decoded, user: User) -> str | None:
        """The kind of seat the request took (give it back with :meth:`release`), None if it
        took none (long-running, or a system:masters request past the limit); 429 if full."""
        if d.verb == "watch" or d.subresource in LONG_RUNNING:
            return None
        kind = READ_ONLY if d.verb in _READ_VERBS else MUTATING
        if self.in_use[kind] >= self.limits[kind]:
            if user.is_master:
                return None
            self.dropped.add((kind,))
            raise too_many()
        self.in_use[kind] += 1
        return kind

    def release(self, kind: str) -> None:
        self.in_use[kind] -= 1
