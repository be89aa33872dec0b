"""Layout helpers for ``describe``: aligned ``Key:  value`` blocks, maps, events.

kubectl's describe output is read by people, not parsed, but its shape (aligned labels,
``<none>`` for empty, an Events table at the end) is what users scan for, so we keep it.
"""

from __future__ import annotations

from typing import Any

from bosun.cli.printers import TableWriter, age, parse_time

JSON = dict[str, Any]


class Out:
    """Collects ``(indent, key, value)`` lines and aligns values per indent level."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str, str | None]] = []

    def kv(self, key: str, value: Any, indent: int = 0) -> None:
        text = "<none>" if value in (None, "", [], {}) else str(value).rstrip("\n")
        first, *rest = text.split("\n")
        self.lines.append((indent, key + ":", first))
        self.lines.extend((indent, "", line) for line in rest)

    def head(self, key: str, indent: int = 0) -> None:
        self.lines.append((indent, key + ":", None))

    def text(self, line: str, indent: int = 0) -> None:
        self.lines.append((indent, line, None))

    def mapping(self, key: str, m: Any, indent: int = 0, sep: str = "=") -> None:
        """Labels/annotations style: first pair on the key's line, the rest aligned under it."""
        if not isinstance(m, dict) or not m:
            self.kv(key, "<none>", indent)
            return
        pairs = [f"{k}{sep}{v}" for k, v in sorted(m.items())]
        self.kv(key, pairs[0], indent)
        for p in pairs[1:]:
            self.lines.append((indent, "", p))

    def render(self) -> str:
        widths: dict[int, int] = {}
        for indent, key, value in self.lines:
            if value is not None:
                widths[indent] = max(widths.get(indent, 0), len(key))
        out: list[str] = []
        for indent, key, value in self.lines:
            pad = "  " * indent
            if value is None:
                out.append(pad + key)
            else:
                out.append(f"{pad}{key.ljust(widths[indent] + 2)}{value}".rstrip())
        return "\n".join(out)


def generic(out: Out, value: Any, indent: int) -> None:
    """Any JSON value as indented ``Key: value`` lines (describe for kinds without a describer)."""
    if isinstance(value, dict):
        for k, v in value.items():
            label = k[:1].upper() + k[1:]
            if isinstance(v, (dict, list)) and v:
                out.head(label, indent)
                generic(out, v, indent + 1)
            else:
                out.kv(label, _scalar(v), indent)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                first = True
                for k, v in item.items():
                    label = ("- " if first else "  ") + k[:1].upper() + k[1:]
                    first = False
                    if isinstance(v, (dict, list)) and v:
                        out.head(label, indent)
                        generic(out, v, indent + 2)
                    else:
                        out.kv(label, _scalar(v), indent)
            else:
                out.text(f"- {_scalar(item)}", indent)
    else:
        out.text(_scalar(value), indent)


def _scalar(v: Any) -> str:
    if v is None or v == "" or v == [] or v == {}:
        return "<none>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def events_block(events: list[JSON]) -> str:
    if not events:
        return "Events:  <none>"

    def when(e: JSON) -> str:
        return str(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp")
                   or (e.get("metadata") or {}).get("creationTimestamp") or "")

    rows = [["Type", "Reason", "Age", "From", "Message"], ["----", "------", "----", "----", "-------"]]
    def stamp(e: JSON) -> float:
        t = parse_time(when(e))
        return t.timestamp() if t else 0.0

    for e in sorted(events, key=stamp):
        count = int(e.get("count") or 1)
        first = e.get("firstTimestamp") or when(e)
        shown = age(when(e))
        if count > 1:
            shown = f"{shown} (x{count} over {age(first)})"
        source = e.get("source") or {}
        frm = e.get("reportingComponent") or source.get("component") or ""
        if source.get("host"):
            frm = f"{frm}, {source['host']}" if frm else str(source["host"])
        rows.append([str(e.get("type") or ""), str(e.get("reason") or ""), shown, str(frm),
                     " ".join(str(e.get("message") or "").split())])
    writer = TableWriter()
    return "Events:\n" + "\n".join("  " + line for line in writer.lines(rows))
