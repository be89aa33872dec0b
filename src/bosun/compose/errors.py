"""The two ways a compose file is refused or partly honoured: an error or a named warning."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


class ComposeError(Exception):
    """A file Compose itself would reject; the message is one line in Compose's words."""


@dataclass(frozen=True, slots=True)
class ComposeWarning:
    """Something Bosun cannot honour, named by service and field so that nothing drops silently."""

    where: str  # "services.web", "networks.front", or "" for the whole file
    field: str  # "deploy.resources.reservations.devices"
    reason: str

    def __str__(self) -> str:
        path = ".".join(p for p in (self.where, self.field) if p)
        return f"{path}: {self.reason}" if path else self.reason


@dataclass(slots=True)
class Warnings:
    """Collected while loading and translating; the CLI prints them before it writes."""

    items: list[ComposeWarning] = field(default_factory=list)

    def add(self, where: str, field_: str, reason: str) -> None:
        w = ComposeWarning(where, field_, reason)
        if w not in self.items:
            self.items.append(w)

    def __iter__(self) -> Iterator[ComposeWarning]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def lines(self) -> list[str]:
        return [str(w) for w in self.items]
