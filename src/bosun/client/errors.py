"""The error every failed API call raises, built from the ``Status`` the server returned."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


class ApiError(Exception):
    """The API server refused a request; ``body`` is its ``Status`` object (or a synthetic one)."""

    def __init__(self, status: int, reason: str, message: str, body: JSON | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.body: JSON = body if body is not None else {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": status,
        }

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_status(cls, status: int, body: Any, fallback: str = "") -> ApiError:
        """Build from whatever the server sent: a Status object, other JSON, or plain text."""
        if isinstance(body, dict) and body.get("kind") == "Status":
            code = int(body.get("code") or status)
            return cls(code, str(body.get("reason") or ""), str(body.get("message") or fallback), body)
        return cls(status, _default_reason(status), fallback or f"HTTP {status}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}


def _default_reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")
