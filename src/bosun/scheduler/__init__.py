"""The scheduler: places pending pods on nodes (filters, then a strategy's scores) and binds them.

``run(ctx)`` is the component entry point `bosun server` discovers; the cluster default
strategy is ``ctx.options.scheduling_strategy`` and a pod may override it with the
annotation ``bosun.io/scheduling-strategy``.
"""

from __future__ import annotations

from bosun.component import ComponentContext


async def run(ctx: ComponentContext) -> None:
    from bosun.scheduler.scheduler import Scheduler

    await Scheduler(ctx).run()


__all__ = ["run"]
