"""Per-kind strategies: what is special about each kind, attached to its registry row.

:mod:`bosun.api.strategy.base` defines the questions and the generic answers; the other
modules hold the kinds' own strategies, grouped as the API groups are.
"""

from bosun.api.strategy.base import GENERIC, Strategy

__all__ = ["GENERIC", "Strategy"]
