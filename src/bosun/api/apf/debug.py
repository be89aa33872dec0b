"""kube-apiserver's ``/debug/api_priority_and_fairness/dump_*``: this API process's priority
levels, queues and waiting requests as comma-and-tab separated rows (upstream's tabwriter
layout, columns padded to line up), one process's view as each kube-apiserver gives its own.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bosun.api.apf.dispatcher import Dispatcher, Flow

_NONE = "<none>"


def _table(rows: list[list[str]]) -> str:
    """Go's tabwriter(minwidth 8, padding 1) over cells ending in ",": each column as wide as
    its widest cell plus one, the last cell of a row unpadded."""
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + 2)  # the "," and the padding
    out = []
    for row in rows:
        cells = [f"{c},".ljust(max(8, widths[i])) for i, c in enumerate(row[:-1])]
        out.append("".join(cells) + row[-1])
    return "\n".join(out) + "\n"


def priority_levels(d: Dispatcher) -> str:
    rows = [["PriorityLevelName", "ActiveQueues", "IsIdle", "IsQuiescing", "WaitingRequests", "ExecutingRequests",
             "DispatchedRequests", "RejectedRequests", "TimedoutRequests", "CancelledRequests"]]
    for name in sorted(d.levels):
        level = d.levels[name]
        qs = level.seats
        if level.exempt:
            rows.append([name, *[_NONE] * 9])
            continue
        active = sum(1 for _, waiting, _ in qs.queues() if waiting)
        idle = qs.executing == 0 and qs.queued == 0
        rows.append([name, str(active), str(idle).lower(), "false", str(qs.queued), str(qs.executing),
                     str(qs.dispatched), str(qs.rejected), str(qs.timed_out), str(qs.cancelled)])
    return _table(rows)


def queues(d: Dispatcher) -> str:
    rows = [["PriorityLevelName", "Index", "PendingRequests", "ExecutingRequests", "SeatsInUse", "NextDispatchR",
             "InitialSeatsSum", "MaxSeatsSum", "TotalWorkSum"]]
    for name in sorted(d.levels):
        level = d.levels[name]
        if level.exempt:
            rows.append([name, *[_NONE] * 8])
            continue
        for index, waiting, seats in level.seats.queues():
            # A request that finds a free seat takes it without a queue here, so executing
            # requests are the level's, not a queue's: "-" for those columns.
            rows.append([name, str(index), str(len(waiting)), "-", "-", f"{level.seats.virtual:.8f}ss",
                         str(seats), str(seats), f"{float(seats):.8f}ss"])
    return _table(rows)


def requests(d: Dispatcher, details: bool) -> str:
    head = ["PriorityLevelName", "FlowSchemaName", "QueueIndex", "RequestIndexInQueue", "FlowDistingsher",
            "ArriveTime", "InitialSeats", "FinalSeats", "AdditionalLatency"]
    if details:
        head += ["UserName"]
    rows = [head]
    for name in sorted(d.levels):
        level = d.levels[name]
        if level.exempt:
            continue
        for index, waiting, _ in level.seats.queues():
            for position, note in enumerate(waiting):
                if not isinstance(note, Flow):
                    continue
                w = note.work
                arrived = datetime.fromtimestamp(note.arrived, UTC).isoformat().replace("+00:00", "Z")
                row = [name, note.schema.name, str(index), str(position), note.distinguisher, arrived,
                       str(w.initial), str(w.final), f"{w.latency * 1000:g}ms" if w.latency else "0s"]
                if details:
                    row.append(note.user)
                rows.append(row)
    return _table(rows)
