"""A transport that can be handed over to another while its clients keep running.

A swarm manager's own agent talks to the API server in its process (in-process transport).
When ``bosun node demote`` takes the manager role away, that server stops but the agent must
carry on, as a worker's agent does, with the other managers: its clients (the agent's, its
informers', its status writer's) keep this one object, and only what it delegates to changes.
Requests under way on the old transport finish or fail there (the server's stop ends its
watches); the callers already retry, and their next request goes to the new one. (The agent
takes no shared objects from the in-process server, so nothing is lost by the indirection.)
"""

from __future__ import annotations

from bosun.client.transport import Carrier, Forwarding, Transport


class HandoverTransport(Forwarding):
    def __init__(self, current: Transport) -> None:
        self.current = current
        self._old: list[Transport] = []

    def hand_over(self, new: Transport) -> None:
        """From now on every request goes to ``new``; the old transport is closed with this one."""
        self._old.append(self.current)
        self.current = new

    def target(self) -> Carrier:
        return self.current

    async def close(self) -> None:
        for t in [*self._old, self.current]:
            await t.close()
