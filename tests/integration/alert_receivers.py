"""Real receivers for the alerting tests, on loopback: an SMTP server (aiosmtpd) that wants
STARTTLS and a login, and an HTTP server that takes Slack-style webhook posts and can be
"down" (answers 503). Both keep what they received, in order.
"""

from __future__ import annotations

import contextlib
import email
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

SMTP_USER, SMTP_PASSWORD = "bosun", "s3cret-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    """What the SMTP server accepted (thread-safe: the server runs in its own thread)."""

    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        with self.lock:
            self.messages.append(email.message_from_bytes(raw))
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(m["Subject"]) for m in self.messages]


def _login(server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == SMTP_USER.encode() and \
        data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


@contextlib.contextmanager
def smtp_server(port: int, cert: Path, key: Path, mailbox: Mailbox) -> Iterator[Controller]:
    """An SMTP server on 127.0.0.1:``port`` that requires STARTTLS and AUTH."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    ctl = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=True,
                     auth_required=True, auth_require_tls=True, authenticator=_login)
    ctl.start()
    try:
        yield ctl
    finally:
        ctl.stop()


@dataclass
class Webhook:
    """A chat webhook: records each JSON body it accepted; while ``down`` it answers 503."""

    down: bool = False
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _post(self, request: web.Request) -> web.Response:
        if self.down:
            self.refused += 1
            return web.Response(status=503, text="maintenance")
        self.received.append(await request.json())
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def texts(self) -> list[str]:
        return [str(b.get("text")) for b in self.received]
