"""The flags ``service create`` and ``service update`` share, spelled as Docker spells them,
and their conversion into :class:`bosun.swarm.flags.ServiceFlags` fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from bosun.swarm.flags import ServiceFlags

F = Callable[..., Any]

# (flag, compose key) for the update/rollback/restart/resource/health groups.
_GROUPS: dict[str, tuple[tuple[str, str, type], ...]] = {
    "update": (("--update-parallelism", "parallelism", int), ("--update-delay", "delay", str),
               ("--update-monitor", "monitor", str), ("--update-order", "order", str),
               ("--update-failure-action", "failure_action", str),
               ("--update-max-failure-ratio", "max_failure_ratio", float)),
    "rollback": (("--rollback-parallelism", "parallelism", int), ("--rollback-delay", "delay", str),
                 ("--rollback-monitor", "monitor", str), ("--rollback-order", "order", str),
                 ("--rollback-failure-action", "failure_action", str),
                 ("--rollback-max-failure-ratio", "max_failure_ratio", float)),
    "restart": (("--restart-condition", "condition", str), ("--restart-delay", "delay", str),
                ("--restart-max-attempts", "max_attempts", int), ("--restart-window", "window", str)),
    "limits": (("--limit-cpu", "cpus", str), ("--limit-memory", "memory", str), ("--limit-pids", "pids", int)),
    "reservations": (("--reserve-cpu", "cpus", str), ("--reserve-memory", "memory", str)),
    "health": (("--health-cmd", "test", str), ("--health-interval", "interval", str),
               ("--health-retries", "retries", int), ("--health-timeout", "timeout", str),
               ("--health-start-period", "start_period", str)),
}


def _param(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def group_options(f: F) -> F:
    for options in _GROUPS.values():
        for flag, _, kind in reversed(options):
            f = click.option(flag, _param(flag), type=kind, default=None)(f)
    return f


def fill_groups(flags: ServiceFlags, values: dict[str, Any]) -> None:
    """Copy the group flags that were given into ``flags`` (update, restart, health ...)."""
    for group, options in _GROUPS.items():
        target: dict[str, Any] = getattr(flags, group)
        for flag, key, _ in options:
            value = values.get(_param(flag))
            if value is not None:
                target[key] = ["CMD-SHELL", value] if key == "test" else value


def common_options(f: F) -> F:
    """Single-valued flags of create and update."""
    for args, kw in reversed((
        (("--mode",), {"type": click.Choice(["replicated", "global", "replicated-job", "global-job"]),
                       "default": None, "help": "Service mode (create only)."}),
        (("--replicas",), {"type": int, "default": None, "help": "Number of tasks."}),
        (("--replicas-max-per-node",), {"type": int, "default": None, "help": "Most tasks per node."}),
        (("--max-concurrent",), {"type": int, "default": None,
                                 "help": "Most tasks of a replicated job running at once."}),
        (("--endpoint-mode",), {"type": click.Choice(["vip", "dnsrr"]), "default": None}),
        (("--hostname",), {"default": None}),
        (("-u", "--user"), {"default": None}),
        (("-w", "--workdir"), {"default": None}),
        (("--entrypoint",), {"default": None}),
        (("--stop-grace-period",), {"default": None}),
        (("--no-healthcheck",), {"is_flag": True, "default": False}),
        (("-d", "--detach"), {"is_flag": True, "help": "Return at once instead of waiting to converge."}),
    )):
        f = click.option(*args, **kw)(f)
    return group_options(f)
