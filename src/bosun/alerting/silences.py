"""Silences: label matchers with an end time, kept in the ``bosun-alerting-silences``
ConfigMap (kube-system), one key per silence, so ``bosun alerts silence`` adds one with a
merge patch and ``kubectl get configmap`` shows them all. A silenced alert is neither sent
nor resolved to anyone until its silence ends.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

SILENCES_NAME = "bosun-alerting-silences"
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


class SilenceError(ValueError):
    """A matcher or silence that cannot be used (one line)."""


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        hit = re.fullmatch(self.value, have) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def parse_matcher(text: str) -> Matcher:
    """``alertname=KubePodCrashLooping``, ``namespace!=dev``, ``pod=~"web-.*"``."""
    m = _MATCHER.match(text)
    if not m:
        raise SilenceError(f"{text!r} is not a matcher (use label=value, label!=value, label=~regex or label!~regex)")
    name, op, value = m.groups()
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as e:
            raise SilenceError(f"{text!r}: bad regular expression: {e}") from None
    return Matcher(name, op, value)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def mutes(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def to_json(self) -> str:
        return orjson.dumps({"matchers": [str(m) for m in self.matchers], "startsAt": _stamp(self.starts_at),
                             "endsAt": _stamp(self.ends_at), "comment": self.comment,
                             "createdBy": self.created_by}).decode()


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: Any) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def parse_silence(sid: str, text: str) -> Silence:
    try:
        data = orjson.loads(text)
        matchers = tuple(parse_matcher(str(m)) for m in data["matchers"])
        return Silence(sid, matchers, _epoch(data["startsAt"]), _epoch(data["endsAt"]),
                       str(data.get("comment", "")), str(data.get("createdBy", "")))
    except SilenceError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise SilenceError(f"silence {sid}: not a silence ({e})") from None


def load_silences(data: Mapping[str, str]) -> tuple[list[Silence], list[str]]:
    """The silences of the ConfigMap's data, and one line per entry that is not one."""
    out: list[Silence] = []
    errors: list[str] = []
    for sid, text in sorted(data.items()):
        try:
            out.append(parse_silence(sid, text))
        except SilenceError as e:
            errors.append(str(e))
    return out, errors


def muted_by(silences: Iterable[Silence], labels: Mapping[str, str], now: float | None = None) -> str:
    """The id of an active silence that mutes ``labels``, or ""."""
    at = time.time() if now is None else now
    for s in silences:
        if s.active(at) and s.mutes(labels):
            return s.id
    return ""
