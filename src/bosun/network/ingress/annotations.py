"""The ingress-nginx annotations users bring, where they map simply onto nginx.

Known: ``rewrite-target``, ``use-regex``, ``ssl-redirect``, ``force-ssl-redirect``,
``proxy-body-size`` and ``backend-protocol`` (``HTTP``, ``HTTPS``). Any other annotation
under ``nginx.ingress.kubernetes.io/`` is ignored with an event, never an error; a known one
with a value nginx would refuse is ignored with an event too (so one Ingress's typo cannot
stop every other route from updating).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PREFIX = "nginx.ingress.kubernetes.io/"
SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
PROTOCOLS = {"HTTP": "http", "HTTPS": "https"}
TRUE, FALSE = "true", "false"


@dataclass(frozen=True)
class Options:
    rewrite_target: str = ""
    regex: bool = False
    ssl_redirect: bool = True  # when the host has TLS
    force_ssl_redirect: bool = False  # even when it has none
    body_size: str = ""  # nginx's client_max_body_size; "" its default (1m)
    protocol: str = "http"


Warnings = list[tuple[str, str]]


def _flag(name: str, value: str, default: bool, warnings: Warnings) -> bool:
    if value.lower() in (TRUE, FALSE):
        return value.lower() == TRUE
    warnings.append(("InvalidAnnotation", f"{PREFIX}{name}: {value!r} is not \"true\" or \"false\"; ignored"))
    return default


def parse_annotations(ing: dict[str, Any]) -> tuple[Options, Warnings]:
    annotations = (ing.get("metadata") or {}).get("annotations") or {}
    warnings: Warnings = []
    fields: dict[str, Any] = {}
    for full, raw in sorted(annotations.items()):
        if not full.startswith(PREFIX):
            continue
        name, value = full[len(PREFIX):], str(raw).strip()
        if name == "rewrite-target":
            if not value.startswith("/") or any(ch.isspace() or ch in '"\\;{}' for ch in value):
                warnings.append(("InvalidAnnotation", f"{full}: {value!r} is not a path; ignored"))
            else:
                fields["rewrite_target"] = value
        elif name == "use-regex":
            fields["regex"] = _flag(name, value, False, warnings)
        elif name == "ssl-redirect":
            fields["ssl_redirect"] = _flag(name, value, True, warnings)
        elif name == "force-ssl-redirect":
            fields["force_ssl_redirect"] = _flag(name, value, False, warnings)
        elif name == "proxy-body-size":
            if SIZE.match(value):
                fields["body_size"] = value
            else:
                warnings.append(("InvalidAnnotation", f"{full}: {value!r} is not a size such as 8m; ignored"))
        elif name == "backend-protocol":
            if value.upper() in PROTOCOLS:
                fields["protocol"] = PROTOCOLS[value.upper()]
            else:
                warnings.append(("InvalidAnnotation", f"{full}: {value!r} is not supported (HTTP, HTTPS); "
                                 "HTTP is used"))
        else:
            warnings.append(("AnnotationIgnored", f"{full} is not supported by Bosun's ingress; ignored"))
    options = Options(**fields)
    if "$" in options.rewrite_target:
        options = Options(**{**fields, "regex": True})
    return options, warnings
