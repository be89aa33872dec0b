"""An admission webhook for bench/webhooks.py, in a process of its own (so that it does not
share the benchmark's event loop): ``python bench/_webhook_server.py CERT KEY PORT_FILE``
writes its port to PORT_FILE, then prints ``ready``. ``/validate`` allows everything;
``/mutate`` adds one label by JSONPatch."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import ssl
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

PATCH = base64.b64encode(json.dumps([{"op": "add", "path": "/metadata/labels/bench-mutated",
                                      "value": "yes"}]).encode()).decode()


async def handle(request: web.Request) -> web.Response:
    review = await request.json()
    resp: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": True}
    if request.match_info["path"] == "mutate":
        resp.update(patchType="JSONPatch", patch=PATCH)
    return web.json_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})


async def main(cert: str, key: str, port_file: str) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_post("/{path}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    server = site._server
    assert server is not None and hasattr(server, "sockets")
    Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))  # noqa: ASYNC240 (once, at start)
    with contextlib.suppress(BrokenPipeError):  # the benchmark stops reading once it has seen it
        print("ready", flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
