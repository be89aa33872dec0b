"""Where notifications go: a webhook speaking Slack's incoming-webhook JSON (Slack,
Mattermost and Rocket.Chat accept it; the Alertmanager-style ``alerts`` list rides along for
programs), and email over SMTP (STARTTLS or TLS, with auth) through aiosmtplib.

Secrets (a webhook URL, an SMTP password) are read when a message is sent, so a rotated
Secret takes effect at the next message. A failed send raises :class:`DeliveryError`.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol

import aiohttp
import aiosmtplib

from bosun.alerting.config import EmailSpec, SecretRef, WebhookSpec
from bosun.alerting.model import Alert
from bosun.alerting.notify import Notification

SecretReader = Callable[[SecretRef], Awaitable[str]]
TIMEOUT = 10.0


class DeliveryError(Exception):
    """A notification did not reach its receiver (the message says why, in one line)."""


class Integration(Protocol):
    """One way a receiver is reached (its webhook, its email)."""

    id: str

    async def send(self, note: Notification) -> None: ...


def _stamp(t: float | None) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else ""


def title(note: Notification) -> str:
    name = note.group_labels.get("alertname") or (note.firing or note.resolved)[0].name
    rest = ", ".join(f"{k}={v}" for k, v in sorted(note.group_labels.items()) if k != "alertname" and v)
    head = f"[FIRING:{len(note.firing)}]" if note.firing else "[RESOLVED]"
    return f"{head} {name}" + (f" ({rest})" if rest else "")


def _line(a: Alert) -> str:
    desc = a.annotations.get("description", "")
    return f"- {a.summary}" + (f": {desc}" if desc else "")


def body_lines(note: Notification) -> list[str]:
    lines: list[str] = []
    if note.firing:
        lines += ["Firing:", *(_line(a) for a in note.firing)]
    if note.resolved:
        lines += ["Resolved:", *(_line(a) for a in note.resolved)]
    return lines


def slack_payload(note: Notification) -> dict[str, Any]:
    def alert_json(a: Alert, status: str) -> dict[str, Any]:
        return {"status": status, "labels": a.labels, "annotations": a.annotations,
                "startsAt": _stamp(a.fired_at or a.active_since), "fingerprint": a.fingerprint}

    return {
        "text": title(note),
        "attachments": [{"color": "danger" if note.firing else "good", "title": title(note),
                         "text": "\n".join(body_lines(note)), "fallback": title(note)}],
        "status": note.status,
        "groupLabels": note.group_labels,
        "alerts": [alert_json(a, "firing") for a in note.firing] + [alert_json(a, "resolved") for a in note.resolved],
    }


class WebhookIntegration:
    def __init__(self, id: str, spec: WebhookSpec, secrets: SecretReader) -> None:
        self.id, self.spec, self.secrets = id, spec, secrets

    async def send(self, note: Notification) -> None:
        url = self.spec.url or (await self.secrets(self.spec.url_secret) if self.spec.url_secret else "")
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session, \
                    session.post(url.strip(), json=slack_payload(note)) as resp:
                if resp.status >= 300:
                    text = " ".join((await resp.text())[:200].split())
                    raise DeliveryError(f"webhook answered {resp.status} {resp.reason or ''}: {text}".strip())
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise DeliveryError(f"webhook: {type(e).__name__}: {' '.join(str(e).split())}") from None


class EmailIntegration:
    def __init__(self, id: str, spec: EmailSpec, secrets: SecretReader) -> None:
        self.id, self.spec, self.secrets = id, spec, secrets

    def message(self, note: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = title(note)
        msg["From"] = self.spec.sender
        msg["To"] = ", ".join(self.spec.to)
        msg.set_content("\n".join(body_lines(note)) + "\n")
        return msg

    async def send(self, note: Notification) -> None:
        s = self.spec
        password = await self.secrets(s.password_secret) if s.password_secret else None
        ca = await self.secrets(s.ca_secret) if s.ca_secret else None
        try:
            context = ssl.create_default_context(cadata=ca)
        except ssl.SSLError as e:
            raise DeliveryError(f"email: the CA of secret {s.ca_secret.name if s.ca_secret else ''} "
                                f"is not PEM: {e}") from None
        if s.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            await aiosmtplib.send(self.message(note), hostname=s.host, port=s.port,
                                  username=s.username or None, password=password,
                                  use_tls=s.tls == "tls", start_tls=s.tls == "starttls",
                                  tls_context=context, timeout=TIMEOUT)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            raise DeliveryError(f"email to {s.host}:{s.port}: {' '.join(str(e).split()) or type(e).__name__}") from None
