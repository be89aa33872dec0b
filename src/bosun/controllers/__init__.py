"""Controllers: one module per controller, each with ``async def run(ctx) -> None``.

`bosun server` discovers them (see :mod:`bosun.controlplane`): a module here that defines
``run`` is started under leader election with the shared informers and event recorders of
its :class:`~bosun.controlplane.ComponentContext`.
"""
