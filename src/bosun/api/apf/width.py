"""How many seats a request takes (upstream's work estimator, k8s.io/apiserver
``flowcontrol/request``): one, except

- a list: one seat per 100 objects it will go through, between 1 and the level's maximum
  (at most 10). The objects are the resource's count in the watch cache, doubled when the
  list is read from the store (a continuation, an exact resourceVersion match) where the
  store pages through them, and a limit less than the count lowers it there, as upstream;
  a resource this server does not serve costs one (an aggregated API's list costs its
  own server);
- a create, update, patch or delete of a resource that 10 or more watches follow: besides
  its one seat while it runs, ``ceil(watches / 10)`` seats (at most the level's maximum)
  held 5 ms per seat (more when capped) after it ends, for sending the event to them.

Watches take one seat, held until their initial events are sent (:mod:`bosun.api.apf.gate`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from bosun.api.target import Decoded

MIN_SEATS = 1
MAX_SEATS = 10  # upstream's MaximumSeatsLimit
OBJECTS_PER_SEAT = 100.0
WATCHES_PER_SEAT = 10.0
EVENT_ADDITIONAL_DURATION = 0.005  # seconds one seat spends on one watch event
MUTATING = frozenset({"create", "update", "patch", "delete"})


@dataclass(frozen=True, slots=True)
class Work:
    """``initial`` seats while the request runs, ``final`` seats held ``latency`` seconds after."""

    initial: int = MIN_SEATS
    final: int = 0
    latency: float = 0.0

    @property
    def seats(self) -> int:
        """What the request holds from its start to the end of its latency (upstream's MaxSeats)."""
        return self.initial if self.initial >= self.final else self.final


ONE = Work()


class Counts(Protocol):
    """What the estimate reads of the server (its watch cache)."""

    def objects(self, group_plural: str) -> int: ...

    def watches(self, group_plural: str) -> int: ...


def level_max_seats(nominal: int, hand_size: int) -> int:
    """A Queue level's widest request: 15% of its nominal seats or its seats per hand,
    whichever is less, at least one (upstream's MaxSeatsTracker)."""
    per_hand = nominal // hand_size if hand_size else nominal
    return max(1, min(math.ceil(nominal * 0.15), per_hand))


def _from_store(query: Mapping[str, str]) -> bool:
    """Upstream's shouldListFromStorage, with a consistent read served by the cache."""
    rv = query.get("resourceVersion", "")
    match = query.get("resourceVersionMatch", "")
    limited = query.get("limit", "") not in ("", "0")
    exact = limited and not match and rv not in ("", "0")
    return bool(query.get("continue")) or (match not in ("", "NotOlderThan")) or exact


def estimate(d: Decoded, query: Mapping[str, str], counts: Counts | None, level_max: int) -> Work:
    """The request's seats; ``level_max``: its level's widest request (0: no own maximum)."""
    verb = d.verb
    if verb == "list":
        return _list(d, query, counts, level_max)
    if verb in MUTATING:
        return _mutating(d, counts, level_max)
    return ONE


def _cap(level_max: int) -> int:
    return MAX_SEATS if level_max <= 0 or level_max > MAX_SEATS else level_max


def _list(d: Decoded, query: Mapping[str, str], counts: Counts | None, level_max: int) -> Work:
    target = d.target
    if target is None or counts is None:
        return ONE
    stored = counts.objects(target.res.group_plural)
    try:
        limit = int(query.get("limit") or 0)
    except ValueError:
        return Work(_cap(level_max))  # refused later as invalid: as costly as can be, as upstream
    limit = limit if 0 < limit < stored else stored
    if not _from_store(query):
        processed = stored
    elif query.get("labelSelector") or query.get("fieldSelector"):
        processed = stored + limit
    else:
        processed = 2 * limit
    seats = math.ceil(processed / OBJECTS_PER_SEAT)
    return Work(min(max(seats, MIN_SEATS), _cap(level_max)))


def _mutating(d: Decoded, counts: Counts | None, level_max: int) -> Work:
    target = d.target
    if target is None or counts is None:
        return ONE
    watches = counts.watches(target.res.group_plural)
    if watches < WATCHES_PER_SEAT:
        return ONE
    final = math.ceil(watches / WATCHES_PER_SEAT)
    work = final * EVENT_ADDITIONAL_DURATION  # seat-seconds
    final = min(final, _cap(level_max))
    return Work(MIN_SEATS, final, work / final)
