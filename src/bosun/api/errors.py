"""API errors and their Kubernetes ``Status`` form.

Every refusal the API makes is an :class:`APIError`; the HTTP layer turns it into a
``Status`` object with the code, reason and (for 422) one cause per bad field, exactly as
kubectl and the Python client expect to read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field. ``type`` is Kubernetes' cause type, e.g. ``FieldValueInvalid``."""

    type: str
    field: str
    message: str
    value: Any = None
    has_value: bool = False

    def detail(self) -> str:
        """The text Kubernetes prints: ``spec.replicas: Invalid value: -3: must be ...``."""
        label = _TYPE_LABELS.get(self.type, "Invalid value")
        if self.has_value:
            tail = f": {self.message}" if self.message else ""
            return f"{self.field}: {label}: {_render(self.value)}{tail}"
        if self.message:
            return f"{self.field}: {label}: {self.message}" if label != "Required value" else (
                f"{self.field}: Required value" + (f": {self.message}" if self.message else "")
            )
        return f"{self.field}: {label}"


_TYPE_LABELS = {
    "FieldValueInvalid": "Invalid value",
    "FieldValueRequired": "Required value",
    "FieldValueNotFound": "Not found",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTypeInvalid": "Invalid value",
}


def _render(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def invalid(field: str, value: Any, message: str) -> FieldError:
    return FieldError("FieldValueInvalid", field, message, value, True)


def required(field: str, message: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field, message)


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    quoted = ", ".join(f'"{s}"' for s in supported)
    return FieldError("FieldValueNotSupported", field, f"supported values: {quoted}", value, True)


def forbidden(field: str, message: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, message)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", field, "", value, True)


class APIError(Exception):
    """A refusal with an HTTP code and a Kubernetes reason."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        list_meta: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        # The Status's metadata (an expired list's fresh continue token).
        self.list_meta = list_meta
        # Response headers that go with the refusal (a 429's Retry-After).
        self.headers = headers

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": dict(self.list_meta) if self.list_meta else {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def _details(kind: str, name: str, group: str = "") -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        d["group"] = group
    return d


def not_found(plural: str, name: str, group: str = "") -> APIError:
    res = f"{plural}.{group}" if group else plural
    return APIError(404, "NotFound", f'{res} "{name}" not found', details=_details(plural, name, group))


def already_exists(plural: str, name: str, group: str = "") -> APIError:
    res = f"{plural}.{group}" if group else plural
    return APIError(
        409, "AlreadyExists", f'{res} "{name}" already exists', details=_details(plural, name, group)
    )


def conflict(plural: str, name: str, group: str = "", why: str = "") -> APIError:
    res = f"{plural}.{group}" if group else plural
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return APIError(
        409, "Conflict", f'Operation cannot be fulfilled on {res} "{name}": {why}',
        details=_details(plural, name, group),
    )


def invalid_object(kind: str, name: str, errors: list[FieldError], group: str = "") -> APIError:
    """422 Invalid naming every bad field, as ``kubectl`` prints it."""
    causes = [
        {"reason": e.type, "message": e.detail().split(": ", 1)[1] if ": " in e.detail() else e.detail(),
         "field": e.field}
        for e in errors
    ]
    if len(errors) == 1:
        summary = errors[0].detail()
    else:
        summary = "[" + ", ".join(e.detail() for e in errors) + "]"
    d = _details(kind, name, group)
    d["causes"] = causes
    return APIError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', details=d)


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def gone(message: str) -> APIError:
    return APIError(410, "Expired", message)


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def forbidden_request(message: str) -> APIError:
    return APIError(403, "Forbidden", message)


def method_not_allowed(message: str) -> APIError:
    return APIError(405, "MethodNotAllowed", message)


def too_large(message: str = "Request entity too large: limit is 3145728") -> APIError:
    return APIError(413, "RequestEntityTooLarge", message)


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(
        415, "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json, "
        "application/yaml, application/merge-patch+json, application/json-patch+json, "
        f"application/strategic-merge-patch+json (got {content_type!r})",
    )


def unavailable(message: str) -> APIError:
    return APIError(503, "ServiceUnavailable", message)


def timeout(message: str) -> APIError:
    return APIError(504, "Timeout", message)


def too_many_requests(retry_after: int = 1) -> APIError:
    """API Priority and Fairness' refusal: clients (client-go) wait Retry-After and try again."""
    return APIError(429, "TooManyRequests", "Too many requests, please try again later.",
                    details={"retryAfterSeconds": retry_after}, headers={"Retry-After": str(retry_after)})


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", message)
